"""Why the local edge forwards with aiohttp, not httpx (a benchmark, not a test).

    ./dev bench http-clients [--requests 3000] [--out bench/results/http_clients.json]

Starts the constant uvicorn app (bench/lib/constant_app.py) on loopback answering every POST with a
fixed 384-float JSON body (the size of a MiniLM embedding answer), then sends it the same small
JSON POST sequentially with each client library, interleaved in rounds, and records client CPU
(process time) and wall time per request. The edge pays this client CPU on every cache miss, so it
bounds the edge's cache-off throughput relative to the origin's. Reported as ratios to aiohttp from
the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.lib import constant_app, procs, results  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "http_clients.json"
ANSWER = '{"data":[' + ",".join("0.123456" for _ in range(384)) + "]}"
BODY = b'{"model":"minilm","input":"hello world"}'
HEADERS = {"content-type": "application/json", "authorization": "Bearer x"}


async def measure(call: Callable[[], Awaitable[None]], n: int) -> tuple[float, float]:
    """(client CPU µs, wall µs) per request over n sequential requests."""
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        await call()
    return 1e6 * (time.process_time() - c0) / n, 1e6 * (time.perf_counter() - w0) / n


async def run(url: str, n: int, rounds: int) -> dict[str, dict[str, float]]:
    samples: dict[str, list[tuple[float, float]]] = {"aiohttp": [], "httpx": []}
    async with aiohttp.ClientSession() as session, httpx.AsyncClient() as client:

        async def with_aiohttp() -> None:
            async with session.post(url, data=BODY, headers=HEADERS) as resp:
                await resp.read()

        async def with_httpx() -> None:
            (await client.post(url, content=BODY, headers=HEADERS)).read()

        calls = {"aiohttp": with_aiohttp, "httpx": with_httpx}
        for call in calls.values():  # warm both pools
            await measure(call, 200)
        for _ in range(rounds):
            for name, call in calls.items():
                samples[name].append(await measure(call, n // rounds))
    return {
        name: {
            "cpu_us_per_request": round(statistics.median(c for c, _ in rows), 1),
            "wall_us_per_request": round(statistics.median(w for _, w in rows), 1),
        }
        for name, rows in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    port = procs.free_port()
    answer = [[["content-type", "application/json"]], ANSWER]
    with tempfile.TemporaryDirectory() as logs:
        server = constant_app.start(port, Path(logs) / "constant.log", answer)
        try:
            clients = asyncio.run(run(f"{server.url}/v1/embeddings", args.requests, args.rounds))
        finally:
            server.stop()
    base = clients["aiohttp"]
    result = {
        **results.stamp("http_clients"),
        "versions": {"aiohttp": aiohttp.__version__, "httpx": httpx.__version__},
        "requests_per_client": args.requests,
        "clients": clients,
        "httpx_cpu_over_aiohttp": round(
            clients["httpx"]["cpu_us_per_request"] / base["cpu_us_per_request"], 2
        ),
        "httpx_wall_over_aiohttp": round(
            clients["httpx"]["wall_us_per_request"] / base["wall_us_per_request"], 2
        ),
    }
    results.write_json(args.out, result)
    for name, row in clients.items():
        cpu, wall = row["cpu_us_per_request"], row["wall_us_per_request"]
        print(f"{name:8s} cpu {cpu:7.1f} µs  wall {wall:7.1f} µs")
    print(f"httpx / aiohttp: cpu {result['httpx_cpu_over_aiohttp']}x -> {args.out}")


if __name__ == "__main__":
    main()
