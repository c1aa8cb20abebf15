"""The ASGI adapter: the local server's requests to and from `EdgeApp` (no framework: the hot
path stays a few calls deep). Never imported inside Workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from edge.adapters.clientip import TrustedProxies
from edge.core.app import EdgeApp
from edge.core.request import EdgeRequest, build_request

log = logging.getLogger("edge.asgi")
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def _text(raw: bytes) -> str:
    """Raw request-target bytes as text for `build_request` (bytes that are not UTF-8 survive
    as themselves, see `edge.core.request`)."""
    return raw.decode("utf-8", "surrogateescape")


def request_from_scope(scope: Scope, body: bytes, proxies: TrustedProxies) -> EdgeRequest:
    """The edge's request for an ASGI HTTP scope: the path from `raw_path` as it was on the
    wire (re-encoded from the decoded `path` when a server gives no raw path)."""
    raw_path = scope.get("raw_path")
    if raw_path:
        path = _text(raw_path).split("?", 1)[0]  # some servers leave the query in raw_path
    else:
        from urllib.parse import quote

        path = quote(scope["path"], safe="/:@!$&'()*+,;=~")
    raw_headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in scope["headers"]]
    client = scope.get("client")
    peer = client[0] if client else ""
    req = build_request(
        scope["method"], path, _text(scope.get("query_string", b"")), raw_headers, body, ""
    )
    req.client_ip = proxies.client_ip(peer, req.headers.get("x-forwarded-for"))
    req.scheme = scope.get("scheme", "http")
    return req


class ASGIEdge:
    """ASGI 3 application: lifespan starts the periodic health checks. Requests that arrive on
    one of `internal_ports` (the local server's internal listener) are marked `internal`."""

    def __init__(
        self,
        app: EdgeApp,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
        internal_ports: frozenset[int] = frozenset(),
    ):
        self.app = app
        self._internal_ports = internal_ports
        self._proxies = TrustedProxies(app.config.trusted_proxies)
        self._max_body = app.config.largest_body
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
        req = request_from_scope(scope, b"".join(chunks), self._proxies)
        if self._internal_ports:
            server = scope.get("server")
            req.internal = bool(server) and server[1] in self._internal_ports
        resp = await self.app.handle(req)
        out = [
            (k.encode("latin-1"), v.encode("latin-1", "replace")) for k, v in resp.headers.items()
        ]
        if resp.status not in (204, 304):  # a known length: no chunked framing
            out.append((b"content-length", str(len(resp.body)).encode()))
        await send({"type": "http.response.start", "status": resp.status, "headers": out})
        await send({"type": "http.response.body", "body": resp.body})
