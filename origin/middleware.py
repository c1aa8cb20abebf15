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
- Caller proof (`origin/caller.py`): the subject a valid `X-Outpost-Caller` proves is stored in
  `scope["state"]["caller_subject"]` (`request.state.caller_subject`: `"sub:..."`, `"ip:..."`, or
  None when unproven) and in the `caller_subject` context variable; when proofs are required,
  anything else is refused 401 (health probes and public keys excepted).
- The internal listener (`internal_ports`) serves only the operators' reads (`INTERNAL_PATHS`),
  without a proof; anything else there is 404.
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

from origin import strict, tracing
from origin.caller import CallerRefused, CallerVerifier, caller_subject
from origin.logs import bind_request, json_output, unbind_request
from origin.metrics import OriginMetrics
from origin.problems import Problem, problem_body

log = logging.getLogger("origin.access")
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
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


# What the internal listener serves (GET only): metrics, detailed health, the model listing.
INTERNAL_PATHS = frozenset(
    {"/metrics", "/healthz", "/v1/models", "/v2/health/live", "/v2/health/ready"}
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
        caller: CallerVerifier | None = None,
        internal_ports: frozenset[int] = frozenset(),
    ) -> None:
        self.app = app
        self.caller = caller
        self.internal_ports = internal_ports
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
        raw_rid = b""
        length = None
        traceparent = None
        proof: bytes | None = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                raw_rid = value
                candidate = value.decode("latin-1")
                rid = candidate if _SANE_ID.fullmatch(candidate) else None
            elif key == b"content-length":
                length = value
            elif key == b"traceparent":
                traceparent = value
            elif key == b"x-outpost-caller":  # twice: joined, which no proof matches
                proof = value if proof is None else proof + b", " + value
        rid = rid or uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        # None until a proof names it; a wrapper in the same process (a benchmark harness that
        # plays the edge) may have set it: scope state is the server's, never a client's.
        state.setdefault("caller_subject", None)
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
        subject: str | None = None

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

        bound_subject = None
        try:
            refusal = None
            if self.caller is not None or self.internal_ports:
                subject, refusal = self._admit(scope, proof, raw_rid, rid)
            if refusal is not None:
                await self._problem(send_wrapper, refusal, rid, scope.get("path"))
                return
            if subject is not None:
                state["caller_subject"] = subject
                bound_subject = caller_subject.set(subject)
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
                        {
                            "method": method,
                            "route": route,
                            "status": status,
                            "duration_ms": ms,
                            "caller": subject,
                        }
                        if json_output()
                        else None
                    )
                    log.log(
                        level,
                        "request_id=%s trace_id=%s method=%s route=%s status=%d duration_ms=%.1f"
                        " caller=%s",
                        rid,
                        trace_id,
                        method,
                        route,
                        status,
                        ms,
                        subject or "-",
                        extra={"fields": fields},
                    )
            if bound_subject is not None:
                caller_subject.reset(bound_subject)
            unbind_request(bound)

    def _admit(
        self, scope: Scope, proof: bytes | None, raw_rid: bytes, rid: str
    ) -> tuple[str | None, Problem | None]:
        """(the subject this request is proven for, None when unproven or when it needs no
        proof; the problem to answer instead when it may not go on)."""
        method, path = scope["method"], scope["path"]
        server = scope.get("server")
        if server is not None and server[1] in self.internal_ports:
            if method == "GET" and path in INTERNAL_PATHS:
                return None, None
            listed = ", ".join(sorted(INTERNAL_PATHS))
            return None, Problem(404, "not-found", f"the internal listener serves GET {listed}")
        caller = self.caller
        if caller is None or caller.exempt(method, path) or (proof is None and not caller.required):
            return None, None
        # The path as received (ASGI's raw_path; some servers append the query to it), then
        # the query.
        raw_path = scope.get("raw_path") or path.encode("utf-8", "surrogateescape")
        target = raw_path.partition(b"?")[0]
        query = scope.get("query_string")
        if query:
            target = target + b"?" + query
        try:
            return caller.verify(proof, method, target, raw_rid), None
        except CallerRefused as refused:
            if not caller.required:
                return None, None
            log.debug("request_id=%s caller refused: %s", rid, refused.reason)
            return None, caller.problem(refused)

    @staticmethod
    async def _problem(send: Send, problem: Problem, rid: str, path: str | None) -> None:
        body = problem_body(problem, rid, path)
        extra = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in problem.headers.items()
        ]
        await send(
            {
                "type": "http.response.start",
                "status": problem.status,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                    (b"connection", b"close"),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _too_long(value: bytes, limit: int) -> bool:
    """A declared body over `limit` (the HTTP server refuses a malformed Content-Length; were
    one to get here, the streaming count still applies)."""
    size = strict.size(value)
    return size is not None and size > limit


def _route_of(scope: dict[str, Any]) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
