"""Pure ASGI middleware (no BaseHTTPMiddleware, for speed): request id, body limit, access log.

- `X-Request-ID`: accepted from the client (the edge) when sane, else generated; stored in
  `scope["state"]["request_id"]` and echoed on every response.
- Body size limit: 413 problem+json from Content-Length or while streaming (per request when
  `body_limit` is given: image uploads may be larger than other bodies).
- One log line and request metrics per request, labelled by route template.
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

from origin.metrics import OriginMetrics
from origin.problems import Problem, problem_body

log = logging.getLogger("origin.access")
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid = None
        length = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                candidate = value.decode("latin-1")
                rid = candidate if _SANE_ID.match(candidate) else None
            elif key == b"content-length":
                length = value
        rid = rid or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        rid_header = (b"x-request-id", rid.encode())
        status = 500
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", []), rid_header]
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
                )
        except Exception:
            log.exception("unhandled error request_id=%s path=%s", rid, scope.get("path"))
            if not started:
                await self._problem(send_wrapper, Problem(500, "internal"), rid)
        finally:
            route = _route_of(scope)
            elapsed = time.perf_counter() - start
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.request_seconds.labels(route).observe(elapsed)
            if self.access_log:
                log.info(
                    "request_id=%s method=%s route=%s status=%d duration_ms=%.1f",
                    rid,
                    scope["method"],
                    route,
                    status,
                    elapsed * 1000,
                )

    @staticmethod
    async def _problem(send: Send, problem: Problem, rid: str) -> None:
        body = problem_body(problem, rid)
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
