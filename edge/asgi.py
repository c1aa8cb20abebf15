"""A pure-ASGI adapter around `EdgeApp` (no framework: the hot path stays a few calls deep)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from edge.app import EdgeApp
from edge.clientip import TrustedProxies
from edge.messages import EdgeRequest

log = logging.getLogger("edge.asgi")
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class ASGIEdge:
    """ASGI 3 application: lifespan starts the periodic health checks."""

    def __init__(self, app: EdgeApp, on_shutdown: Callable[[], Awaitable[None]] | None = None):
        self.app = app
        self._proxies = TrustedProxies(app.config.trusted_proxies)
        self._max_body = app.config.max_request_bytes
        self._on_shutdown = on_shutdown
        self._health_task: asyncio.Task[None] | None = None

    async def _health_loop(self) -> None:
        interval = self.app.config.health_interval_seconds
        while True:
            try:
                await self.app.pool.check_all()
            except Exception:
                log.exception("health check round failed")
            await asyncio.sleep(interval)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._health_task = asyncio.create_task(self._health_loop())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._health_task is not None:
                    self._health_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._health_task
                if self._on_shutdown is not None:
                    await self._on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def request(
        self,
        method: str,
        path: str,
        query: bytes,
        raw_headers: list[tuple[bytes, bytes]],
        body: bytes,
        peer: str,
        names_lowered: bool = False,
    ) -> EdgeRequest:
        """The edge's view of an HTTP request (header names lower-cased, repeats joined).
        `names_lowered`: the caller lower-cased the header names already (uvicorn's parser does;
        ASGI only asks servers to)."""
        if names_lowered:
            headers = {n.decode("latin-1"): v.decode("latin-1") for n, v in raw_headers}
        else:
            headers = {n.decode("latin-1").lower(): v.decode("latin-1") for n, v in raw_headers}
        if len(headers) != len(raw_headers):  # a repeated header: join its values in order
            headers = {}
            for raw_name, raw_value in raw_headers:
                name = raw_name.decode("latin-1").lower()
                value = raw_value.decode("latin-1")
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return EdgeRequest(
            method=method,
            path=path,
            query=query.decode("latin-1"),
            headers=headers,
            body=body,
            client_ip=self._proxies.client_ip(peer, headers.get("x-forwarded-for")),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            # Keep the chunk that crosses the limit so the app still sees an oversized body
            # (413), then drop the rest: memory stays bounded by limit + one chunk.
            if size <= self._max_body:
                chunks.append(chunk)
            size += len(chunk)
            more = message.get("more_body", False)
        client = scope.get("client")
        req = self.request(
            scope["method"],
            scope["path"],
            scope.get("query_string", b""),
            scope["headers"],
            b"".join(chunks),
            client[0] if client else "",
        )
        resp = await self.app.handle(req)
        out = [
            (k.encode("latin-1"), v.encode("latin-1", "replace")) for k, v in resp.headers.items()
        ]
        if resp.status not in (204, 304):  # a known length: no chunked framing
            out.append((b"content-length", str(len(resp.body)).encode()))
        await send({"type": "http.response.start", "status": resp.status, "headers": out})
        await send({"type": "http.response.body", "body": resp.body})
