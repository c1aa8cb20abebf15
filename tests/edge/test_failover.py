"""Routing: killing an origin mid-load moves traffic to the other with no failed request."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.edge.conftest import (
    EMBED_MODEL,
    Issuer,
    edge_metric,
    issuer_settings,
    start_edge,
    start_origin,
)

TOTAL = 240
CONCURRENCY = 8


def test_killing_an_origin_mid_load_fails_no_idempotent_request(
    built_models: Path, issuer: Issuer, oidc_issuer: Issuer, log_dir: Path
) -> None:
    a = start_origin(built_models, log_dir)
    b = start_origin(built_models, log_dir)
    edge = start_edge(
        {
            "origins": [{"url": a.url, "weight": 1}, {"url": b.url, "weight": 1}],
            "issuers": issuer_settings(issuer, oidc_issuer),
            "rate_limits": {"inference": {"rate": 10000, "burst": 10000}},
        },
        log_dir,
    )
    token = issuer.token("ed-1", sub="load")
    statuses: list[int] = []

    async def load() -> None:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(TOTAL):
            queue.put_nowait(i)

        async def worker(client: httpx.AsyncClient) -> None:
            while not queue.empty():
                i = queue.get_nowait()
                if i == TOTAL // 3:
                    a.kill()  # mid-load, with requests in flight
                resp = await client.post(
                    edge.url + "/v1/embeddings",
                    json={"model": EMBED_MODEL, "input": f"load {i}"},
                    headers={"authorization": f"Bearer {token}", "cache-control": "no-cache"},
                )
                statuses.append(resp.status_code)

        async with httpx.AsyncClient(timeout=30) as client:
            await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))

    try:
        asyncio.run(load())
        assert len(statuses) == TOTAL
        assert statuses.count(200) == TOTAL, sorted(set(statuses))
        health = httpx.get(edge.admin_url + "/healthz").json()  # with origin details
        dead = next(o for o in health["origins"] if o["url"] == a.url)
        assert not dead["healthy"] or dead["ejected_for_seconds"] > 0
        assert edge_metric(edge, "outpost_edge_ejections_total") >= 1
    finally:
        edge.stop()
        a.stop()
        b.stop()
