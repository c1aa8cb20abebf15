"""A static OpenAPI 3.1 description of the edge's own surface, built from the route table.

What the edge adds in front of the origin: which paths it forwards, the token scope each one
needs, its rate-limit class and caching, the headers it sets, and the problem+json answers it
gives itself. Request and response bodies of forwarded paths are the origin's (its own OpenAPI
document describes them). Served at `GET /openapi.json`; `tests/edge/test_openapi.py` checks
every path here against `edge.core.routes.match`.
"""

from __future__ import annotations

from typing import Any

from edge.core.routes import _TABLE, SEGMENT, Route

VERSION = "0.1.0"

# route name -> (concrete OpenAPI paths, summary)
PATHS: dict[str, tuple[tuple[str, ...], str]] = {
    "healthz": (("/healthz",), "Edge health: origins, learned model versions, cache size"),
    "metrics": (("/metrics",), "Prometheus metrics (local edge only; 404 in Workers)"),
    "openapi": (("/openapi.json",), "This document"),
    "v1-infer": (
        ("/v1/embeddings", "/v1/classifications"),
        "OpenAI-compatible inference, cached by model version",
    ),
    "v1-images": (
        ("/v1/images/embeddings", "/v1/images/classifications"),
        "Image embeddings and classification (multipart or JSON), cached by a digest of the "
        "uploaded images and model version",
    ),
    "rerank": (
        ("/v1/rerank", "/v2/rerank"),
        "Rerank documents for a query (Cohere and Jina clients), cached by model version",
    ),
    "v2-infer": (
        ("/v2/models/{model}/infer", "/v2/models/{model}/versions/{version}/infer"),
        "Open Inference Protocol inference, cached by model version",
    ),
    "v1-models": (("/v1/models", "/v1/models/{model}"), "Model listing"),
    "v2-models": (
        (
            "/v2/models/{model}",
            "/v2/models/{model}/versions/{version}",
            "/v2/models/{model}/ready",
            "/v2/models/{model}/versions/{version}/ready",
        ),
        "Open Inference Protocol model metadata and readiness",
    ),
    "v2-health": (
        ("/v2", "/v2/health/live", "/v2/health/ready"),
        "Open Inference Protocol server metadata and health",
    ),
    "token": (("/oauth/token",), "OAuth 2.0 token endpoint (RFC 6749), forwarded once"),
    "attestation-token": (
        ("/attestation/local/token",),
        "The local stack's attestation issuer (development only), forwarded once",
    ),
    "attestation-keys": (
        ("/attestation/local/jwks.json",),
        "The local attestation issuer's keys (development only)",
    ),
    "well-known": (
        ("/.well-known/jwks.json", "/.well-known/openid-configuration"),
        "Token signing keys (RFC 7517) and OIDC discovery",
    ),
}

_TEXT = {"type": "string"}
_INT = {"type": "integer"}
HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "description": "The request id (the client's if sane, else generated); also in logs.",
        "schema": _TEXT,
    },
    "X-Cache": {
        "description": "Edge cache outcome.",
        "schema": {"type": "string", "enum": ["HIT", "MISS", "STALE", "BYPASS"]},
    },
    "X-Model-Name": {"description": "Model that served the answer.", "schema": _TEXT},
    "X-Model-Version": {"description": "Model version that served the answer.", "schema": _TEXT},
    "Age": {"description": "Seconds since a cached answer was stored.", "schema": _INT},
    "ETag": {"description": "Validator for If-None-Match (GET answers).", "schema": _TEXT},
    "RateLimit": {
        "description": '`"<route class>";r=<requests left>;t=<seconds until the bucket is '
        "full again>` (draft-ietf-httpapi-ratelimit-headers).",
        "schema": _TEXT,
    },
    "RateLimit-Policy": {
        "description": '`"<route class>";q=<bucket size>;w=<seconds to refill it>`.',
        "schema": _TEXT,
    },
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": _INT},
}
_RATE = ("RateLimit", "RateLimit-Policy")

# status -> (description, extra headers)
PROBLEMS: dict[int, tuple[str, tuple[str, ...]]] = {
    400: ("The body is not a JSON object.", ()),
    401: ("No token, or an invalid one (see `WWW-Authenticate`).", ()),
    403: ("The token lacks the route's scope.", ()),
    404: ("No such endpoint (or model, from the origin).", ()),
    405: ("Wrong method for this path (see `Allow`).", ()),
    413: ("The body exceeds `max_request_bytes` (`max_image_request_bytes` on image routes).", ()),
    415: ("Inference bodies must be `application/json`.", ()),
    422: ("The origin rejected the body's fields (see `errors`).", ()),
    429: ("Rate limit exceeded.", ("Retry-After", *_RATE)),
    500: ("Unexpected error (a bug); no detail is given.", ()),
    502: ("No origin could be reached.", ()),
    503: ("No origin is available.", ("Retry-After",)),
    504: ("The origin did not answer in time.", ()),
}


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _headers(names: tuple[str, ...]) -> dict[str, Any]:
    return {name: _ref("headers", name) for name in names}


def _problem_response(status: int) -> dict[str, Any]:
    text, extra = PROBLEMS[status]
    return {
        "description": text,
        "headers": _headers(("X-Request-ID", *extra)),
        "content": {"application/problem+json": {"schema": _ref("schemas", "Problem")}},
    }


def _components() -> dict[str, Any]:
    problem = {
        "type": "object",
        "description": "RFC 9457 problem details.",
        "required": ["type", "title", "status", "detail", "request_id"],
        "properties": {
            "type": {"type": "string", "examples": ["urn:outpost:problem:rate-limited"]},
            "title": _TEXT,
            "status": _INT,
            "detail": _TEXT,
            "request_id": _TEXT,
        },
    }
    return {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "An access token from a trusted issuer (verified at the edge "
                "against the issuer's JWKS); the required scope is listed per operation.",
            }
        },
        "schemas": {"Problem": problem},
        "headers": HEADERS,
    }


def _parameters(path: str) -> list[dict[str, Any]]:
    names = [seg[1:-1] for seg in path.split("/") if seg.startswith("{")]
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": f"^{SEGMENT}$"},
        }
        for name in names
    ]


def _describe(route: Route) -> str:
    if route.local:
        return "Answered by the edge itself; no token, not rate-limited."
    parts = [
        f"Token scope: `{route.scope}`." if route.scope else "No token (limited per client IP).",
        f"Rate class: `{route.rate_class}`.",
    ]
    if route.cacheable:
        parts.append("Cached by model version (`X-Cache`).")
    parts.append("Retried on another origin on failure." if route.retryable else "Forwarded once.")
    return " ".join(parts)


def _operation(route: Route, method: str, path: str, summary: str) -> dict[str, Any]:
    ok_headers = ["X-Request-ID"]
    if not route.local:
        ok_headers += _RATE
    if route.cacheable:
        ok_headers += ["X-Cache", "X-Model-Name", "X-Model-Version", "Age"]
    if method == "GET":
        ok_headers.append("ETag")
    ok_text = "Answered by the edge." if route.local else "The origin's answer, forwarded."
    responses: dict[str, Any] = {
        "200": {"description": ok_text, "headers": _headers(tuple(ok_headers))}
    }
    if method == "GET":
        responses["304"] = {
            "description": "Not modified (If-None-Match matched the ETag).",
            "headers": _headers(("X-Request-ID", "ETag")),
        }
    errors = [405, 500]
    if not route.local:
        errors += [404, 413, 422, 429, 502, 503, 504]  # 404/422 come from the origin
    if route.scope is not None:
        errors += [401, 403]
    if route.cacheable:
        errors += [400, 415]
    if route.name == "metrics":
        errors.append(404)
    for status in sorted(errors):  # inlined, not $ref: simple renderers show them as is
        responses[str(status)] = _problem_response(status)
    op: dict[str, Any] = {
        "operationId": f"{method.lower()}_{path.strip('/').replace('/', '_') or 'root'}",
        "summary": summary,
        "description": _describe(route),
        "tags": ["edge" if route.local else "forwarded"],
        "security": [{"bearer": [route.scope]}] if route.scope else [],
        "parameters": _parameters(path),
        "responses": responses,
        "x-outpost-cached": route.cacheable,
    }
    if not op["parameters"]:
        del op["parameters"]
    if not route.local:
        op["x-outpost-rate-class"] = route.rate_class
        op["x-outpost-retried"] = route.retryable
    if method == "POST":
        media = "application/x-www-form-urlencoded" if route.name == "token" else "application/json"
        op["requestBody"] = {
            "required": True,
            "description": "Forwarded unchanged; the origin's API describes the fields.",
            "content": {media: {"schema": {"type": "object"}}},
        }
    return op


def openapi_document() -> dict[str, Any]:
    """The edge's OpenAPI 3.1 document (a plain dict, ready for `json.dumps`)."""
    paths: dict[str, dict[str, Any]] = {}
    for _pattern, route in _TABLE:
        concrete, summary = PATHS[route.name]
        for path in concrete:
            item = paths.setdefault(path, {})
            for method in route.methods:
                if method == "HEAD":  # implied by GET in OpenAPI
                    continue
                item[method.lower()] = _operation(route, method, path, summary)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Outpost edge",
            "version": VERSION,
            "description": "What the edge does in front of the origin: token checks (JWT via "
            "JWKS, per-route scopes), per-subject rate limits (`RateLimit` headers), the "
            "response cache for inference (`X-Cache`), routing to healthy origins, and RFC "
            "9457 problem+json errors. Bodies of forwarded paths follow the origin's API.",
        },
        "paths": paths,
        "components": _components(),
    }
