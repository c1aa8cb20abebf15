"""Soak benchmark (not a test): steady mixed traffic through a real local stack for a while.

    ./dev bench soak [--minutes 10] [--edge-rps 12] [--origin-rps 8] [--warmup-minutes 1]
                     [--out bench/results/soak.json]

Starts `python -m outpost up` (OpenBao, two origins, the edge) on free ports with its own state
folder, then sends a steady, paced mix for the whole duration:
  - through the edge (with a real token): embeddings (repeated texts -> cache hits, unique
    texts -> misses), text classification, and Open Inference Protocol tensor inference;
  - straight to an origin: embeddings with `Cache-Control: no-cache` semantics (every one runs
    the model).
Records every request's outcome and latency, and samples each process's RSS (psutil) every few
seconds. Writes error counts, p50/p99 per minute and RSS over time plus the RSS growth after
warm-up to bench/results/soak.json. Targets: zero errors, RSS growth < 5 % after warm-up.
The edge's per-subject rate limit is 20/s by default: keep --edge-rps below it.

Every unique request adds a cache entry at the edge, so the edge's RSS grows until its response
cache reaches `cache_max_bytes` (64 MiB by default, far more than ten minutes of this mix). The
soak bounds it at --edge-cache-mb (2 MiB) so the cache is full by the end of warm-up and any
growth after that is a leak, not the cache filling; the cache's size is sampled with the RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.lib import results  # noqa: E402
from bench.lib.components import Stack, start_stack  # noqa: E402
from bench.lib.stats import percentile  # noqa: E402
from bench.lib.texts import sentence  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "soak.json"


def stack_processes(stack: Stack) -> dict[str, psutil.Process]:
    """name -> process for vault, each origin and the edge (found by listening port)."""
    ports = {
        int(stack.state["vault"]["addr"].rsplit(":", 1)[1]): "vault",
        int(stack.state["edge"]["url"].rsplit(":", 1)[1]): "edge",
    }
    for i, o in enumerate(stack.state["origins"], 1):
        ports[int(o["url"].rsplit(":", 1)[1])] = f"origin-{i}"
    found: dict[str, psutil.Process] = {}
    for child in psutil.Process(stack.server.pid).children(recursive=True):
        try:
            for c in child.net_connections(kind="tcp"):
                if c.status == psutil.CONN_LISTEN and c.laddr.port in ports:
                    found[ports[c.laddr.port]] = child
        except psutil.Error:
            continue
    return found


@dataclass
class Recorder:
    start: float = field(default_factory=time.monotonic)
    samples: list[tuple[float, str, int, float]] = field(default_factory=list)  # t, kind, st, ms
    errors: list[dict[str, Any]] = field(default_factory=list)

    def add(self, kind: str, status: int, ms: float, detail: str = "") -> None:
        t = time.monotonic() - self.start
        self.samples.append((t, kind, status, ms))
        if (status == 0 or status >= 400) and len(self.errors) < 50:
            self.errors.append({"t": round(t, 1), "kind": kind, "status": status, "detail": detail})


class Traffic:
    """The request mix. Each `send_*` returns (kind, status, detail)."""

    def __init__(self, stack: Stack, models: dict[str, str], seed: int = 7) -> None:
        self.edge = stack.state["edge"]["url"]
        self.origin = stack.state["origins"][0]["url"]
        self.models = models
        self.rng = random.Random(seed)
        self.hot = [sentence(self.rng) for _ in range(25)]
        self.token = stack.token()
        self.token_at = time.monotonic()
        self.stack = stack

    def auth(self) -> dict[str, str]:
        if time.monotonic() - self.token_at > 300:  # well inside the token's lifetime
            self.token, self.token_at = self.stack.token(), time.monotonic()
        return {"authorization": f"Bearer {self.token}"}

    def edge_request(self) -> tuple[str, str, dict[str, Any]]:
        r = self.rng.random()
        if r < 0.35:
            return (
                "edge-embed-hit",
                "/v1/embeddings",
                {
                    "model": self.models["embeddings"],
                    "input": self.rng.choice(self.hot),
                },
            )
        if r < 0.6:
            return (
                "edge-embed-miss",
                "/v1/embeddings",
                {
                    "model": self.models["embeddings"],
                    "input": f"{sentence(self.rng)} {uuid.uuid4().hex[:8]}",
                },
            )
        if r < 0.8:
            return (
                "edge-classify",
                "/v1/classifications",
                {
                    "model": self.models["text-classification"],
                    "input": sentence(self.rng),
                },
            )
        features = [round(self.rng.uniform(0.5, 7.5), 1) for _ in range(4)]
        tensor = {"name": self.models["tensor-input"], "shape": [1, 4], "datatype": "FP32"}
        return (
            "edge-oip",
            f"/v2/models/{self.models['tensor']}/infer",
            {"inputs": [{**tensor, "data": features}]},
        )


async def paced(rps: float, until: float, fire: Any) -> None:
    """Call `fire()` (a coroutine factory) `rps` times a second until `until` (monotonic)."""
    interval = 1.0 / rps
    tasks: set[asyncio.Task[None]] = set()
    next_at = time.monotonic()
    while next_at < until:
        task = asyncio.create_task(fire())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


async def timed(client: httpx.AsyncClient, rec: Recorder, kind: str, **kw: Any) -> None:
    t0 = time.perf_counter()
    try:
        resp = await client.request(**kw)
        status, detail = resp.status_code, (resp.text[:200] if resp.status_code >= 400 else "")
    except httpx.HTTPError as exc:
        status, detail = 0, repr(exc)[:200]
    rec.add(kind, status, (time.perf_counter() - t0) * 1000, detail)


async def sample_rss(
    stack: Stack,
    until: float,
    every: float,
    out: dict[str, list],
    cache: list[list[float]],
) -> None:
    """RSS of each process, and the edge cache's size (from its /healthz), every `every` s."""
    procs = stack_processes(stack)
    start = time.monotonic()
    health = stack.state["edge"]["url"] + "/healthz"
    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            now = time.monotonic()
            for name, proc in procs.items():
                try:
                    rss = proc.memory_info().rss / 1e6
                except psutil.Error:
                    rss = float("nan")
                out.setdefault(name, []).append([round(now - start, 1), round(rss, 1)])
            try:
                size = (await client.get(health)).json()["cache_bytes"] / 1e6
            except (httpx.HTTPError, KeyError, ValueError):
                size = float("nan")
            cache.append([round(now - start, 1), round(size, 2)])
            if now >= until:
                return
            await asyncio.sleep(min(every, max(0.0, until - now)))


def discover_models(stack: Stack, token: str) -> dict[str, str]:
    edge = stack.state["edge"]["url"]
    data = httpx.get(
        edge + "/v1/models", headers={"authorization": f"Bearer {token}"}, timeout=10
    ).json()["data"]
    out: dict[str, str] = {}
    for m in data:
        if m["served_version"] and m["task"] not in out:
            out[m["task"]] = m["name"]
    meta = httpx.get(
        f"{edge}/v2/models/{out['tensor']}",
        headers={"authorization": f"Bearer {token}"},
        timeout=10,
    ).json()
    out["tensor-input"] = meta["inputs"][0]["name"]
    return out


def summarise(
    rec: Recorder, rss: dict[str, list], cache: list[list[float]], args: argparse.Namespace
) -> dict[str, Any]:

    def stats(rows: list[tuple[float, str, int, float]]) -> dict[str, Any]:
        lat = [s[3] for s in rows if 0 < s[2] < 400]
        return {
            "requests": len(rows),
            "errors": sum(1 for s in rows if s[2] == 0 or s[2] >= 400),
            "p50_ms": round(percentile(lat, 50), 2),
            "p99_ms": round(percentile(lat, 99), 2),
        }

    per_minute = []
    minutes = int(args.minutes * 60 // 60) + 1
    for m in range(minutes):
        window = [s for s in rec.samples if m * 60 <= s[0] < (m + 1) * 60]
        if not window:
            continue
        per_minute.append({"minute": m, **stats(window)})
    by_kind: dict[str, dict[str, Any]] = {}
    for kind in sorted({s[1] for s in rec.samples}):
        by_kind[kind] = stats([s for s in rec.samples if s[1] == kind])
    warm = args.warmup_minutes * 60
    growth: dict[str, dict[str, float]] = {}
    for name, series in rss.items():
        after = [v for t, v in series if t >= warm]
        if len(after) >= 2:
            base, end = after[0], after[-1]
            growth[name] = {
                "rss_mb_after_warmup": base,
                "rss_mb_end": end,
                "rss_mb_max": max(after),
                "growth_pct": round((end - base) / base * 100, 2),
            }
    errors = sum(v["errors"] for v in by_kind.values())
    return {
        **results.stamp("soak"),
        "duration_minutes": args.minutes,
        "warmup_minutes": args.warmup_minutes,
        "edge_rps": args.edge_rps,
        "origin_rps": args.origin_rps,
        "requests": len(rec.samples),
        "errors": errors,
        "first_errors": rec.errors,
        "by_kind": by_kind,
        "per_minute": per_minute,
        "rss_mb": rss,
        "edge_cache_max_mb": round(args.edge_cache_mb, 2),
        "edge_cache_mb": cache,
        "rss_growth_after_warmup": growth,
        "targets": {
            "zero_errors": errors == 0,
            "rss_growth_under_5pct": bool(growth)
            and all(g["growth_pct"] < 5 for g in growth.values()),
        },
    }


async def soak(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    traffic = Traffic(stack, discover_models(stack, stack.token()))
    rec = Recorder()
    until = rec.start + args.minutes * 60
    rss: dict[str, list] = {}
    cache: list[list[float]] = []
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        def via_edge() -> Any:
            kind, path, body = traffic.edge_request()
            return timed(
                client,
                rec,
                kind,
                method="POST",
                url=traffic.edge + path,
                json=body,
                headers=traffic.auth(),
            )

        def to_origin() -> Any:
            body = {"model": traffic.models["embeddings"], "input": sentence(traffic.rng)}
            return timed(
                client,
                rec,
                "origin-embed",
                method="POST",
                url=traffic.origin + "/v1/embeddings",
                json=body,
                # the origins answer only proven callers: this traffic plays an internal service
                headers=traffic.stack.caller_headers("POST", "/v1/embeddings"),
            )

        await asyncio.gather(
            paced(args.edge_rps, until, via_edge),
            paced(args.origin_rps, until, to_origin),
            sample_rss(stack, until, args.rss_every, rss, cache),
        )
    return summarise(rec, rss, cache, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup-minutes", type=float, default=1.0)
    parser.add_argument("--edge-rps", type=float, default=12.0)
    parser.add_argument("--origin-rps", type=float, default=8.0)
    parser.add_argument("--rss-every", type=float, default=5.0)
    parser.add_argument("--edge-cache-mb", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    # The edge's cache bounded, so it is full by the end of warm-up (see above).
    cache = {"OUTPOST_EDGE_CACHE_MAX_BYTES": str(int(args.edge_cache_mb * (1 << 20)))}
    with tempfile.TemporaryDirectory(prefix="outpost-soak-") as tmp:
        stack = start_stack(Path(tmp) / "state", cache)
        try:
            result = asyncio.run(soak(stack, args))
        finally:
            stack.stop()
    results.write_json(args.out, result)
    print(f"requests {result['requests']}  errors {result['errors']}")
    for row in result["per_minute"]:
        print(
            f"  minute {row['minute']:>2}: {row['requests']:>5} req  {row['errors']} err  "
            f"p50 {row['p50_ms']:.1f} ms  p99 {row['p99_ms']:.1f} ms"
        )
    for name, g in result["rss_growth_after_warmup"].items():
        print(
            f"  {name:<9} RSS {g['rss_mb_after_warmup']:.0f} -> {g['rss_mb_end']:.0f} MB "
            f"({g['growth_pct']:+.2f} %)"
        )
    print(f"targets: {result['targets']}  -> {args.out}")


if __name__ == "__main__":
    main()
