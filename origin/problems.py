"""RFC 9457 problem+json errors and the exception handlers that produce them.

Raise `Problem(status, slug, detail)` anywhere in a request; the handler renders
`{"type": "urn:outpost:problem:<slug>", "title", "status", "detail", "request_id", "trace_id",
...}` with `Cache-Control: no-store`. On the protocol routes the body also carries the `error`
member their clients read: a string on `/v2` (Open Inference Protocol: tritonclient, KServe), an
object with `message` on `/v1` (OpenAI's SDKs). Unexpected exceptions become a bare 500
`internal` (logged).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from origin.logs import current_trace_id

log = logging.getLogger("origin.problems")

PROBLEM_TYPE = "urn:outpost:problem:"
MEDIA_TYPE = "application/problem+json"

_SLUGS = {
    400: "malformed-request",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "invalid-request",
    429: "overloaded",
    500: "internal",
    503: "unavailable",
}


class Problem(Exception):
    """An error answered as problem+json."""

    def __init__(
        self,
        status: int,
        slug: str | None = None,
        detail: str | None = None,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or slug or str(status))
        self.status = status
        self.slug = slug or _SLUGS.get(status, "error")
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.headers = headers or {}
        self.extra = extra


def request_id_of(scope_or_request: Any) -> str | None:
    scope = getattr(scope_or_request, "scope", scope_or_request)
    return scope.get("state", {}).get("request_id") if isinstance(scope, dict) else None


def error_member(problem: Problem, path: str | None) -> str | dict[str, Any] | None:
    """The `error` member the clients of `path`'s protocol read, if it has one."""
    message = problem.detail or problem.title
    if path is not None and (path == "/v2" or path.startswith("/v2/")):
        return message
    if path is not None and path.startswith("/v1/"):
        fields = [e.get("field") for e in problem.extra.get("errors", ()) if isinstance(e, dict)]
        return {"message": message, "type": problem.slug, "param": next(iter(fields), None)}
    return None


def problem_body(problem: Problem, request_id: str | None, path: str | None = None) -> bytes:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + problem.slug,
        "title": problem.title,
        "status": problem.status,
    }
    if problem.detail:
        body["detail"] = problem.detail
    body["request_id"] = request_id
    trace_id = current_trace_id()
    if trace_id is not None:
        body["trace_id"] = trace_id
    body.update(problem.extra)
    error = error_member(problem, path)
    if error is not None:
        body["error"] = error
    return orjson.dumps(body)


def problem_response(problem: Problem, request_id: str | None, path: str | None = None) -> Response:
    headers = {"Cache-Control": "no-store", **problem.headers}
    return Response(
        problem_body(problem, request_id, path),
        status_code=problem.status,
        media_type=MEDIA_TYPE,
        headers=headers,
    )


def validation_problem(errors: list[dict[str, Any]], detail: str | None = None) -> Problem:
    """422 listing field errors as {"field", "message"} (never the offending values)."""
    items = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        items.append({"field": ".".join(loc) or None, "message": err.get("msg", "invalid")})
    if detail is None:
        detail = "; ".join(
            f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in items[:5]
        )
    return Problem(422, "invalid-request", detail, errors=items)


def install_problem_handlers(app: FastAPI) -> None:
    """Render every error the app can raise as problem+json."""

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return problem_response(exc, request_id_of(request), request.url.path)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else None
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route for {request.method} {request.url.path}"
        problem = Problem(exc.status_code, detail=detail, headers=dict(exc.headers or {}))
        return problem_response(problem, request_id_of(request), request.url.path)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return problem_response(
                Problem(400, "malformed-request", "request body is not valid JSON"),
                request_id_of(request),
                request.url.path,
            )
        return problem_response(
            validation_problem(errors), request_id_of(request), request.url.path
        )

    async def on_error(request: Request, exc: Exception) -> Response:
        log.exception(
            "unhandled error request_id=%s route=%s", request_id_of(request), request.url.path
        )
        return problem_response(Problem(500, "internal"), request_id_of(request), request.url.path)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(Exception, on_error)
