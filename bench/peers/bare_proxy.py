"""A bare HTTP proxy on the edge's own stack: the least any Python edge built on it costs.

    .venv/bin/python bench/peers/bare_proxy.py --port 8004 --upstream-port 8101

uvicorn (httptools parser, uvloop) serves a raw ASGI app that reads the body, forwards it with
the edge's own aiohttp session (`edge.runtime.local.origin_session`), and answers the origin's
status, content type and body. No auth, rate limits, routing, caching, header handling or
compression: where the byte relay (relay.py) is the floor for any process in the path, this is
the floor for an HTTP-aware one written with the libraries the edge uses
(bench/peers/edge_floor.py compares the edge against both). Not a product component.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import uvicorn
from servers import front_args  # puts the repository root on sys.path

from edge.runtime.local import origin_session


class BareProxy:
    """ASGI app forwarding every request to `upstream` (a base URL) and answering its bytes."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.session: aiohttp.ClientSession | None = None  # made inside the server's loop

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if self.session is None:
            self.session = origin_session(256)  # the edge's default pool size
        headers = {k.decode(): v.decode() for k, v in scope["headers"] if k == b"content-type"}
        query = scope["query_string"].decode()
        url = self.upstream + scope["path"] + (f"?{query}" if query else "")
        async with self.session.request(scope["method"], url, headers=headers, data=body) as r:
            data = await r.read()
            ctype = r.headers.get("content-type", "application/octet-stream")
        await send(
            {
                "type": "http.response.start",
                "status": r.status,
                "headers": [(b"content-type", ctype.encode())],
            }
        )
        await send({"type": "http.response.body", "body": data})

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def main() -> None:
    args = front_args(__doc__)
    uvicorn.run(
        BareProxy(f"http://{args.upstream_host}:{args.upstream_port}"),
        host="127.0.0.1",
        port=args.port,
        http="httptools",
        loop="uvloop",
        access_log=False,
        server_header=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
