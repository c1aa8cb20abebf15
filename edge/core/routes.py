"""The edge's route table: what each path needs (scope, rate class, cacheability, retries)."""

from __future__ import annotations

import re
from dataclasses import dataclass

SCOPE_INFERENCE = "inference"
SCOPE_MODELS_READ = "models:read"


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    methods: tuple[str, ...]
    scope: str | None  # None: forwarded without a token (rate-limited per client IP)
    rate_class: str
    cacheable: bool = False
    retryable: bool = True
    local: bool = False


@dataclass(frozen=True, slots=True)
class Match:
    route: Route
    model: str | None = None
    version: str | None = None


SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"  # a model name or version in a path
_SEG = f"({SEGMENT})"
_TABLE: list[tuple[re.Pattern[str], Route]] = [
    (re.compile(r"/healthz"), Route("healthz", ("GET", "HEAD"), None, "default", local=True)),
    (re.compile(r"/metrics"), Route("metrics", ("GET",), None, "default", local=True)),
    (
        re.compile(r"/openapi\.json"),
        Route("openapi", ("GET", "HEAD"), None, "default", local=True),
    ),
    (
        re.compile(r"/v1/(embeddings|classifications)"),
        Route("v1-infer", ("POST",), SCOPE_INFERENCE, "inference", cacheable=True),
    ),
    (
        # Photos: multipart/form-data files, or base64 / data URLs in JSON (edge.core.uploads).
        re.compile(r"/v1/images/(embeddings|classifications)"),
        Route("v1-images", ("POST",), SCOPE_INFERENCE, "images", cacheable=True),
    ),
    (
        re.compile(r"/v[12]/rerank"),  # Cohere's v1 and v2 clients, Jina's
        Route("rerank", ("POST",), SCOPE_INFERENCE, "inference", cacheable=True),
    ),
    (
        re.compile(rf"/v2/models/{_SEG}(?:/versions/{_SEG})?/infer"),
        Route("v2-infer", ("POST",), SCOPE_INFERENCE, "inference", cacheable=True),
    ),
    (
        re.compile(rf"/v1/models(?:/{_SEG})?"),
        Route("v1-models", ("GET",), SCOPE_MODELS_READ, "models"),
    ),
    (
        re.compile(rf"/v2/models/{_SEG}(?:/versions/{_SEG})?(?:/ready)?"),
        Route("v2-models", ("GET",), SCOPE_MODELS_READ, "models"),
    ),
    (re.compile(r"/v2(?:/health/(?:live|ready))?"), Route("v2-health", ("GET",), None, "default")),
    (re.compile(r"/oauth/token"), Route("token", ("POST",), None, "identity", retryable=False)),
    # The local stack's stand-in for App Check's providers (the origin serves it only when
    # enabled, for development).
    (
        re.compile(r"/attestation/local/token"),
        Route("attestation-token", ("POST",), None, "identity", retryable=False),
    ),
    (
        re.compile(r"/attestation/local/jwks\.json"),
        Route("attestation-keys", ("GET",), None, "identity"),
    ),
    (
        re.compile(r"/\.well-known/(?:jwks\.json|openid-configuration)"),
        Route("well-known", ("GET",), None, "identity"),
    ),
]


class MethodNotAllowed(Exception):
    def __init__(self, allowed: tuple[str, ...]) -> None:
        super().__init__(", ".join(allowed))
        self.allowed = allowed


# path -> its Match (or None): the route table is walked once per distinct path. Bounded,
# since paths come from clients: cleared when full.
_SEEN: dict[str, Match | None] = {}
_SEEN_MAX = 4096


def _lookup(path: str) -> Match | None:
    for pattern, route in _TABLE:
        m = pattern.fullmatch(path)
        if m is None:
            continue
        if route.name in ("v2-infer", "v2-models"):
            return Match(route, m.group(1), m.group(2))
        return Match(route)
    return None


def match(method: str, path: str) -> Match | None:
    """The route for `path`, None when unknown; MethodNotAllowed for a wrong method."""
    try:
        found = _SEEN[path]
    except KeyError:
        found = _lookup(path)
        if len(_SEEN) >= _SEEN_MAX:
            _SEEN.clear()
        _SEEN[path] = found
    if found is not None and method not in found.route.methods:
        raise MethodNotAllowed(found.route.methods)
    return found
