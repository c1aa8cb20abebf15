"""Per-subject token buckets: 429 with Retry-After and RateLimit headers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.edge.conftest import RATELIMIT, Issuer, Proc, embed, issuer_settings, start_edge

BURST = 3


@pytest.fixture(scope="module")
def edge(issuer: Issuer, oidc_issuer: Issuer, shared_origin: Proc, log_dir: Path) -> Iterator[Proc]:
    proc = start_edge(
        {
            "origins": [{"url": shared_origin.url}],
            "issuers": issuer_settings(issuer, oidc_issuer),
            # One token per 100 s: no refill can happen while the test runs.
            "rate_limits": {
                "inference": {"rate": 0.01, "burst": BURST},
                "identity": {"rate": 0.01, "burst": 2},
            },
        },
        log_dir,
    )
    yield proc
    proc.stop()


def test_subject_over_its_bucket_gets_429_with_retry_after(edge: Proc, issuer: Issuer) -> None:
    token = issuer.token("ed-1", sub="rate-user-a")
    with httpx.Client() as client:
        remaining = []
        for i in range(BURST):
            resp = embed(client, edge, token, f"rl {i}")
            assert resp.status_code == 200, resp.text
            # One token per 100 s: a full bucket of 3 is 300 s of refill.
            assert resp.headers["ratelimit-policy"] == f'"inference";q={BURST};w=300'
            parsed = RATELIMIT.fullmatch(resp.headers["ratelimit"])
            assert parsed, resp.headers["ratelimit"]
            remaining.append(int(parsed[1]))
            assert int(parsed[2]) == 100 * (BURST - int(parsed[1]))  # seconds until full
        assert remaining == [2, 1, 0]
        resp = embed(client, edge, token, "one too many")
        assert resp.status_code == 429
        assert int(resp.headers["retry-after"]) >= 1
        limited = RATELIMIT.fullmatch(resp.headers["ratelimit"])
        assert limited and limited[1] == "0"
        problem = resp.json()
        assert problem["type"] == "urn:outpost:problem:rate-limited"
        assert problem["status"] == 429

        # Another subject has its own bucket.
        other = embed(client, edge, issuer.token("ed-1", sub="rate-user-b"), "rl other")
        assert other.status_code == 200


def test_unauthenticated_identity_routes_are_limited_per_client_ip(edge: Proc) -> None:
    with httpx.Client() as client:
        statuses = [
            client.get(edge.url + "/.well-known/openid-configuration").status_code for _ in range(3)
        ]
    assert statuses[:2] != [429, 429]
    assert statuses[2] == 429
