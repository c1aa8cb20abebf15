"""Per-subject token buckets: 429 with Retry-After and RateLimit headers. In-process
(tests/edge/harness.py), with the clock under the test's control."""

from __future__ import annotations

from typing import Any

import pytest

from tests.edge.conftest import RATELIMIT, Issuer
from tests.edge.harness import EdgeUnderTest

BURST = 3


@pytest.fixture
def edge(make_edge: Any) -> EdgeUnderTest:
    return make_edge(
        {
            # One token per 100 s: no refill can happen while the test runs.
            "rate_limits": {
                "inference": {"rate": 0.01, "burst": BURST},
                "identity": {"rate": 0.01, "burst": 2},
            },
        }
    )


async def test_subject_over_its_bucket_gets_429_with_retry_after(
    edge: EdgeUnderTest, mem_issuer: Issuer
) -> None:
    token = mem_issuer.token("ed-1", sub="rate-user-a")
    remaining = []
    for i in range(BURST):
        resp = await edge.embed(token, f"rl {i}")
        assert resp.status_code == 200, resp.text
        # One token per 100 s: a full bucket of 3 is 300 s of refill. The work bucket follows.
        policies = resp.headers["ratelimit-policy"].split(", ")
        assert policies[0] == f'"inference";q={BURST};w=300'
        assert policies[1].startswith('"inference-work";q=')
        parsed = RATELIMIT.fullmatch(resp.headers["ratelimit"].split(", ")[0])
        assert parsed, resp.headers["ratelimit"]
        remaining.append(int(parsed[1]))
        assert int(parsed[2]) == 100 * (BURST - int(parsed[1]))  # seconds until full
    assert remaining == [2, 1, 0]
    resp = await edge.embed(token, "one too many")
    assert resp.status_code == 429
    assert int(resp.headers["retry-after"]) >= 1
    limited = RATELIMIT.fullmatch(resp.headers["ratelimit"].split(", ")[0])
    assert limited and limited[1] == "0"
    problem = resp.json()
    assert problem["type"] == "urn:outpost:problem:rate-limited"
    assert problem["status"] == 429

    # Another subject has its own bucket.
    other = await edge.embed(mem_issuer.token("ed-1", sub="rate-user-b"), "rl other")
    assert other.status_code == 200


async def test_a_bucket_refills_at_its_rate(edge: EdgeUnderTest, mem_issuer: Issuer) -> None:
    token = mem_issuer.token("ed-1", sub="rate-user-refill")
    for i in range(BURST):
        assert (await edge.embed(token, f"refill {i}")).status_code == 200
    refused = await edge.embed(token, "refill refused")
    assert refused.status_code == 429
    edge.platform.advance(float(refused.headers["retry-after"]))
    assert (await edge.embed(token, "refill again")).status_code == 200


async def test_unauthenticated_identity_routes_are_limited_per_client_ip(
    edge: EdgeUnderTest,
) -> None:
    statuses = [
        (await edge.client.get("/.well-known/openid-configuration")).status_code for _ in range(3)
    ]
    assert statuses[:2] != [429, 429]
    assert statuses[2] == 429
