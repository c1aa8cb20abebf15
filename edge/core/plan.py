"""What the edge does with a request, decided without I/O.

`Planner.plan` turns an `EdgeRequest` into a `Plan`: the request id, the route, and either an
answer the edge gives at once (a CORS preflight, 404, 405, 413, a local endpoint) or what the
request needs: a token to verify, whom the rate limit counts, an answer to give once it is
counted (a body the edge refuses), and for cached inference the model, the origin pool and the
cache key. `EdgeApp` then runs the steps that await (verifying a token seen for the first time,
the cache's second tier, the origin) in that order. A token verified before costs no I/O, so for
a repeat caller the whole plan is one synchronous call.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from edge.auth.bearer import Authenticator, Principal
from edge.cache import CachedResponse, CacheKey, cache_key, client_bypass
from edge.config import EdgeConfig
from edge.core.body import ReadBody, Refusal, read_body
from edge.core.problems import problem
from edge.core.request import EdgeRequest, EdgeResponse
from edge.core.routes import Match, MethodNotAllowed, Route, match
from edge.core.work import Work
from edge.limits.quota import Once
from edge.tracing import EdgeSpan, start_span
from edge.upstream.pool import ModelVersions

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

# Request bodies up to this size are remembered once parsed (raw bytes -> model field and
# canonical digest), so a repeated request (a cache hit) skips JSON parsing and re-encoding.
_PARSED_MAX_BODY = 4096
_PARSED_MAX_ENTRIES = 4096

_rng = random.Random(os.urandom(32))  # ids correlate logs; they are not secrets
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (4 << 76) | (0x8000 << 48)


def new_request_id() -> str:
    """A random (version 4) UUID as 32 hex digits, without building a `uuid.UUID` or making a
    getrandom() syscall per request."""
    return "%032x" % (_rng.getrandbits(128) & _UUID4_CLEAR | _UUID4_SET)


def request_id(req: EdgeRequest) -> str:
    """The client's `X-Request-ID` when it is a sane id, else a new one."""
    given = req.headers.get("x-request-id")
    return given if given and _REQUEST_ID.fullmatch(given) else new_request_id()


@dataclass(slots=True)
class Plan:
    """One request's plan; `EdgeApp` fills in the outcome fields as it runs the steps."""

    rid: str
    span: EdgeSpan
    route_name: str = "unmatched"  # the `route` label of the request counter
    answer: EdgeResponse | None = None  # answered now: nothing is counted or forwarded
    local: str | None = None  # one of the edge's own endpoints answers
    route: Route | None = None
    match: Match | None = None
    verify: bool = False  # a token seen for the first time: verify it (I/O), then `complete`
    principal: Principal | None = None
    subject: str = ""  # whom the rate limit counts: "sub:<subject>" or "ip:<address>"
    once: Once | None = None  # the DPoP proof's id: a shared quota store refuses its reuse
    refusal: EdgeResponse | None = None  # answered once the rate limit has counted the request
    # Cached inference only:
    model: str = ""
    work: Work = field(default_factory=Work)
    pool: str = "primary"
    key: CacheKey | None = None
    read_cache: bool = True  # false: the client asked for a fresh answer (no-cache, no-store)
    store: bool = True  # false: the client asked that its answer not be kept (no-store)
    # Outcomes:
    limit_headers: dict[str, str] = field(default_factory=dict)
    cache_state: str | None = None  # HIT, MISS, STALE, BYPASS or ERROR once the cache decided
    served_from: CachedResponse | None = None  # the cache entry a HIT or STALE came from


class Planner:
    """Builds plans; holds what plans are made from (the config, known tokens, model versions)."""

    def __init__(
        self,
        config: EdgeConfig,
        auth: Authenticator,
        versions: ModelVersions,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._clock = clock
        self._auth = auth
        self._versions = versions
        self._pools = {o.pool for o in config.origins}
        self._parsed: dict[tuple[str, str, str, str, bytes], ReadBody] = {}

    def plan(self, req: EdgeRequest) -> Plan:
        """The plan for `req`, complete unless `verify` is set."""
        config = self._config
        span = start_span(
            req.headers,
            now=self._clock(),
            sample_ratio=config.trace_sample_ratio,
            trust_sampled=config.trace_trust_incoming_sampled,
        )
        plan = Plan(request_id(req), span)
        if req.method == "OPTIONS" and "access-control-request-method" in req.headers:
            plan.route_name = "preflight"
            plan.local = "preflight"
            return plan
        try:
            m = match(req.method, req.path)
        except MethodNotAllowed as exc:
            allow = ", ".join(exc.allowed)
            plan.answer = problem(
                405, "method-not-allowed", f"Use {allow}.", plan.rid, {"allow": allow}
            )
            return plan
        if m is None:
            plan.answer = problem(404, "not-found", "No such endpoint.", plan.rid)
            return plan
        plan.route, plan.match, plan.route_name = m.route, m, m.route.name
        if m.route.local:
            plan.local = m.route.name
            return plan
        limit = self._config.body_limit(m.route.name)
        if len(req.body) > limit:
            plan.answer = problem(
                413, "too-large", f"Request body exceeds {limit} bytes.", plan.rid
            )
            return plan
        if m.route.scope is None:
            self.complete(plan, req, None)
            return plan
        principal = None
        if m.route.rate_class not in self._config.dpop.require_for:  # else: a proof, per request
            principal = self._auth.known(req.headers.get("authorization"), m.route.scope)
        if principal is None:
            plan.verify = True
        else:
            self.complete(plan, req, principal)
        return plan

    def complete(self, plan: Plan, req: EdgeRequest, principal: Principal | None) -> None:
        """The rest of `plan` once the caller is known (`principal`, or None on a route that
        needs no token)."""
        assert plan.route is not None and plan.match is not None
        plan.verify = False
        plan.principal = principal
        plan.subject = f"sub:{principal.subject}" if principal else f"ip:{req.client_ip}"
        if not plan.route.cacheable:
            return
        parsed = self._read(req, plan.route.name)
        if isinstance(parsed, Refusal):
            plan.refusal = problem(parsed.status, parsed.slug, parsed.detail, plan.rid)
            return
        m = plan.match
        plan.model = m.model or parsed.model
        plan.work = parsed.work
        plan.pool = self._pool_for(plan.model, req, plan.subject)
        cc, pragma = req.headers.get("cache-control"), req.headers.get("pragma")
        if cc or pragma:
            no_read, no_store = client_bypass(cc, pragma)
            plan.read_cache, plan.store = not no_read, not no_store
        version = m.version or self._versions.get(plan.pool, plan.model)
        # Until an origin said the model's answers may be shared, each subject's are its own.
        shared = self._versions.scope(plan.pool, plan.model) == "shared"
        plan.key = cache_key(
            plan.pool,
            plan.model,
            version,
            req.path,
            parsed.digest,
            req.headers.get("accept", ""),
            "" if shared else plan.subject,
        )

    def _read(self, req: EdgeRequest, route: str) -> ReadBody | Refusal:
        """`edge.core.body.read_body`, remembered for small bodies (a repeated request, such as
        a cache hit, skips parsing and re-encoding)."""
        h = req.headers
        memo = (
            route,
            req.path,
            h.get("content-encoding", ""),
            h.get("inference-header-content-length", ""),
            req.body,
        )
        found = self._parsed.get(memo)
        if found is not None:
            return found
        parsed = read_body(req.body, h, route, req.path, self._config.body_limit(route))
        if isinstance(parsed, ReadBody) and len(req.body) <= _PARSED_MAX_BODY:
            if len(self._parsed) >= _PARSED_MAX_ENTRIES:
                self._parsed.clear()
            self._parsed[memo] = parsed
        return parsed

    def _pool_for(self, model: str, req: EdgeRequest, subject: str) -> str:
        """The origin pool for `model`: a canary pool for its configured share of subjects (or
        when asked with `X-Outpost-Canary: 1`), else the primary pool."""
        rule = self._config.canary.get(model)
        if rule is None or rule.pool not in self._pools:
            return "primary"
        if req.headers.get("x-outpost-canary") == "1":
            return rule.pool
        if rule.percent <= 0:
            return "primary"
        digest = hashlib.sha256(f"{model}\x00{subject}".encode()).digest()
        share = int.from_bytes(digest[:4], "big") % 10000
        return rule.pool if share < rule.percent * 100 else "primary"
