"""Overload: when the origin's queue is full it answers 429 with Retry-After instead of
queueing forever, its memory stays bounded through repeated floods, and it recovers."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from tests.origin.conftest import OriginProcess, write_yaml
from tests.resilience.conftest import EMB, make_repo

FLOOD = 96  # concurrent requests per wave
WAVES = 4


@pytest.fixture(scope="module")
def small_queue_origin(tiny_src: Path, res_tmp: Path) -> Iterator[OriginProcess]:
    repo = make_repo(tiny_src, res_tmp / "overload-models")
    cfg = yaml.safe_load((repo / EMB / "model.yaml").read_text())
    batching = {"max_batch_size": 2, "max_queue_delay_ms": 0, "max_queue_size": 16}
    write_yaml(repo / EMB / "model.yaml", {**cfg, "batching": batching})
    proc = OriginProcess(repo, res_tmp / "overload-origin.log").start()
    yield proc
    proc.stop()


async def wave(base: str, n: int, tag: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        texts = [f"flood {tag} {i} " + "word " * 60 for i in range(8)]
        reqs = [
            client.post("/v1/embeddings", json={"model": EMB, "input": texts}) for _ in range(n)
        ]
        return await asyncio.gather(*reqs)


def test_full_queue_answers_429_memory_stays_bounded_and_service_recovers(
    small_queue_origin: OriginProcess,
) -> None:
    base = small_queue_origin.url
    assert small_queue_origin.proc is not None
    proc = psutil.Process(small_queue_origin.proc.pid)
    asyncio.run(wave(base, 8, -1))  # warm-up: arenas, tokenizer caches
    rss_before = proc.memory_info().rss
    statuses: Counter[int] = Counter()
    for tag in range(WAVES):
        for resp in asyncio.run(wave(base, FLOOD, tag)):
            statuses[resp.status_code] += 1
            if resp.status_code == 429:
                assert int(resp.headers["retry-after"]) >= 1
                assert resp.headers["content-type"].startswith("application/problem+json")
    rss_after = proc.memory_info().rss
    assert set(statuses) <= {200, 429}, statuses
    assert statuses[429] > 0, f"the queue never filled: {statuses}"
    assert statuses[200] > 0, statuses
    # generous bound: a leak per rejected request over 384 requests would show far above this
    growth = rss_after - rss_before
    assert growth < 100 * 1024 * 1024, f"RSS grew {growth / 1e6:.1f} MB"
    # load gone: the service answers normally again
    ok = httpx.post(base + "/v1/embeddings", json={"model": EMB, "input": "calm"}, timeout=30)
    assert ok.status_code == 200, ok.text
    metrics = httpx.get(base + "/metrics", timeout=10).text
    assert "Traceback" not in small_queue_origin.logs()
    assert metrics
