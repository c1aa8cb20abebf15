"""Closed-loop HTTP load generator for OpenAI-style `POST /v1/embeddings` servers.

Runs in its own process (so its CPU use is visible and equal for every server) from the bench
venv `.outpost/bench-venvs/loadgen`. aiohttp, not the raw client of bench/lib/rawhttp.py: the
load should look like a real client's (it accepts gzip, as mobile HTTP clients do). `concurrency`
clients each send one request, wait for the answer, and send the next, for `duration` seconds
after a discarded `warmup` period. Every request that completes inside the measured window counts
(wherever it started): counting only those that also start inside it would miss about one
request per client at each end of the window, which undercounts by latency / duration (7 % for
0.56 s requests in 8 s) and made slow cells look slower as clients rose. Prints one JSON object
on stdout:
    python bench/peers/loadgen.py --url http://127.0.0.1:8000/v1/embeddings \
        --inputs texts.json --concurrency 32 --batch 1 --duration 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.lib.stats import percentile


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    ok: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)


async def _client(
    session: aiohttp.ClientSession,
    url: str,
    model: str,
    texts: list[str],
    batch: int,
    ticket: count,
    t_start: float,
    t_end: float,
    stats: Stats,
) -> None:
    n = len(texts)
    while True:
        now = time.perf_counter()
        if now >= t_end:
            return
        i = next(ticket)
        if batch == 1:
            payload: dict = {"model": model, "input": texts[i % n]}
        else:
            payload = {"model": model, "input": [texts[(i * batch + k) % n] for k in range(batch)]}
        t0 = time.perf_counter()
        try:
            async with session.post(url, json=payload) as resp:
                body = await resp.read()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            body, status = repr(exc).encode(), -1
        t1 = time.perf_counter()
        # Requests that finish inside the window count (closed-loop throughput = completions).
        if t1 < t_start or t1 > t_end:
            continue
        if status == 200:
            stats.ok += 1
            stats.latencies.append(t1 - t0)
        else:
            stats.errors += 1
            if len(stats.error_samples) < 3:
                stats.error_samples.append(f"{status}: {body[:200].decode(errors='replace')}")


async def run(
    url: str,
    model: str,
    texts: list[str],
    concurrency: int,
    batch: int,
    duration: float,
    warmup: float,
    timeout: float,
    headers: dict[str, str] | None = None,
) -> dict:
    """Drive the server and return throughput and latency figures for the measured window."""
    stats = Stats()
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(
        connector=connector, timeout=client_timeout, headers=headers
    ) as session:
        t_begin = time.perf_counter()
        t_start, t_end = t_begin + warmup, t_begin + warmup + duration
        ticket = count()
        await asyncio.gather(
            *(
                _client(session, url, model, texts, batch, ticket, t_start, t_end, stats)
                for _ in range(concurrency)
            )
        )
    lat = [s * 1000.0 for s in stats.latencies]
    pct = (lambda q: round(percentile(lat, q), 2)) if lat else (lambda q: None)
    return {
        "concurrency": concurrency,
        "batch": batch,
        "duration_s": duration,
        "requests_ok": stats.ok,
        "errors": stats.errors,
        "error_samples": stats.error_samples,
        "req_per_s": round(stats.ok / duration, 2),
        "sentences_per_s": round(stats.ok * batch / duration, 2),
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "mean_ms": round(statistics.fmean(lat), 2) if lat else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--inputs", required=True, help="JSON file with a list of texts")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--header", action="append", default=[], help="'Name: value' (repeatable)")
    args = parser.parse_args()
    with open(args.inputs, encoding="utf-8") as f:
        texts = json.load(f)
    result = asyncio.run(
        run(
            args.url,
            args.model,
            texts,
            args.concurrency,
            args.batch,
            args.duration,
            args.warmup,
            args.timeout,
            dict(h.split(": ", 1) for h in args.header),
        )
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
