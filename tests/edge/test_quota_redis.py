"""Quotas held across self-hosted edge replicas: two `python -m edge` processes sharing a real
redis-server admit one subject's limit once, not once each; with Redis stopped, each replica
does what `quota_fail_mode` says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.edge.conftest import Issuer, Proc, embed, issuer_settings, start_edge
from tests.redis_server import RedisServer

BURST = 4


def replicas(
    redis: RedisServer,
    shared_origin: Proc,
    log_dir: Path,
    issuer: Issuer,
    oidc: Issuer,
    **extra: Any,
) -> list[Proc]:
    settings = {
        "origins": [{"url": shared_origin.url}],
        "issuers": issuer_settings(issuer, oidc),
        "rate_limits": {"inference": {"rate": 0.001, "burst": BURST}},
        "quota_store": "redis",
        "quota_redis_url": redis.url,
        "quota_timeout_seconds": 0.5,
        **extra,
    }
    return [start_edge(settings, log_dir) for _ in range(2)]


def test_two_replicas_sharing_redis_admit_one_subjects_limit_once(
    redis: RedisServer, shared_origin: Proc, log_dir: Path, issuer: Issuer, oidc_issuer: Issuer
) -> None:
    edges = replicas(redis, shared_origin, log_dir, issuer, oidc_issuer)
    try:
        token = issuer.token("ed-1", sub="fleet-user")
        with httpx.Client(timeout=30) as client:
            statuses = [
                embed(client, edges[i % 2], token, f"fleet {i}").status_code for i in range(8)
            ]
            assert statuses.count(200) == BURST, statuses
            assert statuses[BURST:] == [429] * (8 - BURST)
            other = embed(client, edges[1], issuer.token("ed-1", sub="someone-else"), "x")
            assert other.status_code == 200
    finally:
        for edge in edges:
            edge.stop()


@pytest.mark.parametrize(("mode", "expected"), [("local", 200), ("open", 200), ("closed", 503)])
def test_with_redis_stopped_each_replica_does_what_its_fail_mode_says(
    redis: RedisServer,
    shared_origin: Proc,
    log_dir: Path,
    issuer: Issuer,
    oidc_issuer: Issuer,
    mode: str,
    expected: int,
) -> None:
    edges = replicas(redis, shared_origin, log_dir, issuer, oidc_issuer, quota_fail_mode=mode)
    try:
        token = issuer.token("ed-1", sub=f"outage-{mode}")
        with httpx.Client(timeout=30) as client:
            assert embed(client, edges[0], token, "before").status_code == 200
            redis.stop()
            statuses = [
                embed(client, edges[i % 2], token, f"during {i}").status_code for i in range(12)
            ]
        if mode == "local":  # each replica's own buckets hold: BURST each, so not unlimited
            assert statuses.count(200) == 2 * BURST and statuses.count(429) == 12 - 2 * BURST
        else:
            assert set(statuses) == {expected}, statuses
    finally:
        for edge in edges:
            edge.stop()
