"""A full queue answers 429 with Retry-After, and the model recovers after the flood."""

from __future__ import annotations

import asyncio

import httpx

TEXTS = [" ".join(["overload"] * 50) + f" {i}" for i in range(16)]  # fills max_queue_size 16


async def test_flood_gets_429_with_retry_after_then_recovers(origin):
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=origin.url, timeout=60, limits=limits) as client:

        async def one() -> httpx.Response:
            return await client.post(
                "/v1/embeddings", json={"model": "emb-tiny-queue", "input": TEXTS}
            )

        responses = await asyncio.gather(*(one() for _ in range(40)))
        statuses = [r.status_code for r in responses]
        assert set(statuses) <= {200, 429}, statuses
        assert 200 in statuses
        rejected = [r for r in responses if r.status_code == 429]
        assert rejected, "a flood against a 16-input queue must be rejected in part"
        for r in rejected:
            assert int(r.headers["retry-after"]) >= 1
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["type"] == "urn:outpost:problem:overloaded"
        # after the flood, sequential requests all succeed again
        for _ in range(5):
            assert (await one()).status_code == 200
        metrics = (await client.get("/metrics")).text
        assert 'outpost_origin_rejected_requests_total{model="emb-tiny-queue"}' in metrics
