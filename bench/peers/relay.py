"""A byte relay: the cheapest process that can sit between clients and the origin.

    .venv/bin/python bench/peers/relay.py --port 8003 --upstream-port 8101

Each client connection gets its own upstream connection and bytes are copied both ways,
unparsed, on uvloop. No HTTP parsing, auth, routing or compression: its CPU per request is the
floor for anything in the path (bench/peers/edge_floor.py compares the edge against it). Not
a product component.
"""

from __future__ import annotations

import asyncio
from typing import cast

import uvloop
from servers import front_args


class _Upstream(asyncio.Protocol):
    def __init__(self, client: asyncio.Transport) -> None:
        self.client = client

    def data_received(self, data: bytes) -> None:
        self.client.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()


class _Client(asyncio.Protocol):
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.upstream: asyncio.Transport | None = None
        self.early: list[bytes] = []  # bytes that arrived before the upstream connected

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            upstream, _ = await loop.create_connection(
                lambda: _Upstream(self.transport), self.host, self.port
            )
        except OSError:
            self.transport.close()
            return
        for data in self.early:
            upstream.write(data)
        self.early.clear()
        self.upstream = upstream

    def data_received(self, data: bytes) -> None:
        if self.upstream is None:
            self.early.append(data)
        else:
            self.upstream.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None:
            self.upstream.close()


async def serve(port: int, upstream_host: str, upstream_port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Client(upstream_host, upstream_port), "127.0.0.1", port, backlog=2048
    )
    await server.serve_forever()


def main() -> None:
    args = front_args(__doc__)
    uvloop.run(serve(args.port, args.upstream_host, args.upstream_port))


if __name__ == "__main__":
    main()
