"""The one hand-written HTTP client of bench/: HTTP/1.1 over asyncio streams, keep-alive.

For loads where the client's own CPU must stay small next to the server's (a cache hit costs
the edge tens of microseconds; httpx or aiohttp would spend more per request than the server):
requests are prebuilt bytes, answers are read by `Content-Length` or chunked framing and
dropped. Loads that should look like a real client (gzip, an HTTP library's defaults) use
aiohttp instead (bench/peers/loadgen.py).

`closed_loop` is the load: `clients` connections, each sends one request, waits for the answer,
sends the next. Requests that start during the warm-up are not counted; every request that
starts inside the measured window is, even when its answer comes after the window's end (each
client stops sending at the end, so the last answers come at most one latency later).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


def request_bytes(
    port: int, path: str, body: bytes, headers: Mapping[str, str] | None = None
) -> bytes:
    """A complete `POST path` with a JSON `body` to 127.0.0.1:`port`, plus `headers`."""
    head = [
        f"POST {path} HTTP/1.1",
        f"host: 127.0.0.1:{port}",
        "content-type: application/json",
        f"content-length: {len(body)}",
    ]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
    """Send one request on an open keep-alive connection, read its whole answer; its status."""
    writer.write(raw)
    status_line = await reader.readline()
    length = 0
    chunked = False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode().partition(":")
        name = name.lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value:
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readline()).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(length)
    return int(status_line.split()[1])


@dataclass
class LoadResult:
    """What `closed_loop` counted in its measured window."""

    seconds: float  # the measured window, as asked
    elapsed: float = 0.0  # from the window's start until the last answer
    ok: int = 0  # 200 answers
    errors: int = 0  # any other status
    latencies: list[float] = field(default_factory=list)  # seconds, of the 200 answers


async def closed_loop(
    port: int,
    request: Callable[[int], bytes],
    clients: int,
    seconds: float,
    warmup: float = 0.0,
) -> LoadResult:
    """Drive 127.0.0.1:`port` with `clients` keep-alive connections for `warmup` + `seconds`;
    `request(i)` builds the i-th request's bytes (i counts across all clients)."""
    result = LoadResult(seconds)
    numbers = itertools.count()
    start = time.perf_counter() + warmup
    end = start + seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while (t0 := time.perf_counter()) < end:
                status = await exchange(reader, writer, request(next(numbers)))
                if t0 < start:
                    continue
                if status == 200:
                    result.ok += 1
                    result.latencies.append(time.perf_counter() - t0)
                else:
                    result.errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    result.elapsed = time.perf_counter() - start
    return result
