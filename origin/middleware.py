"""Pure ASGI middleware (no BaseHTTPMiddleware, for speed): request id, trace, body limit, logs.

- `X-Request-ID`: accepted from the client (the edge) when sane, else generated; stored in
  `scope["state"]["request_id"]` and echoed on every response.
- Trace: the W3C `traceparent` is continued in a server span when tracing is on
  (`origin/tracing.py`); either way the request's trace id is bound for log lines and problem
  bodies (`origin/logs.py`), a new one when none arrived.
- Body size limit: 413 problem+json from Content-Length or while streaming (per request when
  `body_limit` is given: image uploads may be larger than other bodies).
- One log line and request metrics per request, labelled by route template (and by model when
  a model answered); probes (health, metrics, the model list the edge polls) log at debug and
  are never traced.
- Any exception escaping the app becomes a 500 `internal` problem (logged with the request id).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from origin import tracing
from origin.logs import bind_request, json_output, unbind_request
from origin.metrics import OriginMetrics
from origin.problems import Problem, problem_body

log = logging.getLogger("origin.access")
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Routes polled by health checkers, scrapers and the edge: their access lines are debug.
PROBE_ROUTES = frozenset(
    {
        "/v2/health/live",
        "/v2/health/ready",
        "/healthz",
        "/metrics",
        "/v1/models",
        "/v2/models/{model}/ready",
        "/v2/models/{model}/versions/{version}/ready",
    }
)
# The same probes by path (known before routing): never traced.
_PROBE_PATHS = frozenset(
    {"/v2/health/live", "/v2/health/ready", "/healthz", "/metrics", "/v1/models"}
)


def _is_probe(method: str, path: str) -> bool:
    return method == "GET" and (
        path in _PROBE_PATHS or (path.startswith("/v2/models/") and path.endswith("/ready"))
    )


class _BodyTooLarge(Exception):
    pass


class OriginMiddleware:
    """Request id, body size limit, access log and request metrics in one pass."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        metrics: OriginMetrics,
        access_log: bool,
        body_limit: Callable[[Scope], int] | None = None,
    ) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.body_limit = body_limit
        self.metrics = metrics
        self.access_log = access_log
        self._model_seconds: dict[str, Any] = {}  # labelled children, looked up once per model

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid = None
        length = None
        traceparent = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                candidate = value.decode("latin-1")
                rid = candidate if _SANE_ID.match(candidate) else None
            elif key == b"content-length":
                length = value
            elif key == b"traceparent":
                traceparent = value
        rid = rid or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        rid_header = (b"x-request-id", rid.encode())
        span = (
            tracing.request_span(scope["headers"], scope["method"], scope["path"])
            if tracing.enabled() and not _is_probe(scope["method"], scope["path"])
            else None
        )
        if span is not None:
            trace_id = span.trace_id
        else:
            incoming = traceparent.decode("latin-1") if traceparent else None
            trace_id = tracing.trace_id_of(incoming) or tracing.new_trace_id()
        bound = bind_request(rid, trace_id)
        status = 500
        started = False
        model: tuple[str, str] | None = None

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started, model
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = message.get("headers", [])
                name = version = None
                for key, value in headers:
                    if key == b"x-model-name":
                        name = value
                    elif key == b"x-model-version":
                        version = value
                if name is not None and version is not None:
                    model = (name.decode("latin-1"), version.decode("latin-1"))
                message["headers"] = [*headers, rid_header]
            await send(message)

        received = 0
        max_body = self.body_limit(scope) if self.body_limit is not None else self.max_body

        async def receive_wrapper() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_body:
                    raise _BodyTooLarge()
            return message

        try:
            if length is not None and _too_long(length, max_body):
                raise _BodyTooLarge()
            await self.app(scope, receive_wrapper, send_wrapper)
        except _BodyTooLarge:
            if not started:
                await self._problem(
                    send_wrapper,
                    Problem(
                        413,
                        "payload-too-large",
                        f"request body exceeds the limit of {max_body} bytes",
                    ),
                    rid,
                    scope.get("path"),
                )
        except Exception:
            log.exception(
                "unhandled error request_id=%s trace_id=%s path=%s",
                rid,
                trace_id,
                scope.get("path"),
            )
            if not started:
                await self._problem(send_wrapper, Problem(500, "internal"), rid, scope.get("path"))
        finally:
            route = _route_of(scope)
            elapsed = time.perf_counter() - start
            method = scope["method"]
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.request_seconds.labels(route).observe(elapsed)
            if model is not None:
                child = self._model_seconds.get(model[0])
                if child is None:
                    child = self.metrics.model_request_seconds.labels(model[0])
                    self._model_seconds[model[0]] = child
                child.observe(elapsed)
            if span is not None:
                span.finish(route=route, status=status, request_id=rid, model=model)
            if self.access_log:
                level = logging.DEBUG if route in PROBE_ROUTES and status != 500 else logging.INFO
                if log.isEnabledFor(level):
                    ms = elapsed * 1000
                    fields = (
                        {"method": method, "route": route, "status": status, "duration_ms": ms}
                        if json_output()
                        else None
                    )
                    log.log(
                        level,
                        "request_id=%s trace_id=%s method=%s route=%s status=%d duration_ms=%.1f",
                        rid,
                        trace_id,
                        method,
                        route,
                        status,
                        ms,
                        extra={"fields": fields},
                    )
            unbind_request(bound)

    @staticmethod
    async def _problem(send: Send, problem: Problem, rid: str, path: str | None) -> None:
        body = problem_body(problem, rid, path)
        await send(
            {
                "type": "http.response.start",
                "status": problem.status,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _too_long(value: bytes, limit: int) -> bool:
    try:
        return int(value) > limit
    except ValueError:
        return False


def _route_of(scope: dict[str, Any]) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
