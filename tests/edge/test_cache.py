"""Edge cache: HIT/MISS/BYPASS, key normalisation, coalescing, version change, stale-if-error."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.edge.conftest import (
    EMBED_MODEL,
    Issuer,
    Proc,
    copy_models,
    edge_metric,
    embed,
    issuer_settings,
    start_edge,
    start_origin,
)


@pytest.fixture(scope="module")
def edge(issuer: Issuer, oidc_issuer: Issuer, shared_origin: Proc, log_dir: Path) -> Iterator[Proc]:
    proc = start_edge(
        {
            "origins": [{"url": shared_origin.url}],
            "issuers": issuer_settings(issuer, oidc_issuer),
            "gzip_min_bytes": 200,
        },
        log_dir,
    )
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def token(issuer: Issuer) -> str:
    return issuer.token("ed-1", sub="cache-user")


def test_second_identical_request_is_a_hit_with_the_same_body(edge: Proc, token: str) -> None:
    with httpx.Client() as client:
        first = embed(client, edge, token, "cache me")
        assert first.status_code == 200
        assert first.headers["x-cache"] == "MISS"
        # Same JSON, different key order and whitespace: the normalised key matches.
        second = client.post(
            edge.url + "/v1/embeddings",
            content=b'{ "input" : "cache me",   "model": "tiny-embed" }',
            headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        )
    assert second.status_code == 200
    assert second.headers["x-cache"] == "HIT"
    assert second.json() == first.json()
    assert second.headers["x-model-version"] == first.headers["x-model-version"]


def test_client_no_cache_and_no_store_bypass_the_cache(edge: Proc, token: str) -> None:
    with httpx.Client() as client:
        assert embed(client, edge, token, "bypass").headers["x-cache"] == "MISS"
        for directive in ("no-cache", "no-store"):
            resp = embed(client, edge, token, "bypass", headers={"cache-control": directive})
            assert resp.status_code == 200
            assert resp.headers["x-cache"] == "BYPASS"
        assert embed(client, edge, token, "bypass").headers["x-cache"] == "HIT"


def test_concurrent_identical_misses_make_one_origin_call(edge: Proc, token: str) -> None:
    before = edge_metric(edge, "outpost_edge_origin_attempts_total")

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        edge.url + "/v1/embeddings",
                        json={"model": EMBED_MODEL, "input": "coalesce me"},
                        headers={"authorization": f"Bearer {token}"},
                    )
                    for _ in range(12)
                )
            )

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 12
    assert sorted(r.headers["x-cache"] for r in responses).count("MISS") == 1
    assert len({r.content for r in responses}) == 1
    assert edge_metric(edge, "outpost_edge_origin_attempts_total") - before == 1


def test_malformed_json_is_400_problem_at_the_edge(edge: Proc, token: str) -> None:
    with httpx.Client() as client:
        resp = client.post(
            edge.url + "/v1/embeddings",
            content=b"{not json",
            headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        )
    assert resp.status_code == 400
    assert resp.headers["content-type"] == "application/problem+json"


def test_large_responses_are_gzipped_when_accepted(edge: Proc, token: str) -> None:
    with httpx.Client() as client:
        text = " ".join(f"word{i}" for i in range(50))
        resp = client.post(
            edge.url + "/v1/embeddings",
            json={"model": EMBED_MODEL, "input": [text] * 8},
            headers={"authorization": f"Bearer {token}", "accept-encoding": "gzip"},
        )
    assert resp.status_code == 200
    assert resp.headers["content-encoding"] == "gzip"
    assert len(resp.json()["data"]) == 8


def _wait(predicate, timeout: float = 90.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def test_new_model_version_invalidates_cached_answers(
    built_models: Path,
    tmp_path: Path,
    issuer: Issuer,
    oidc_issuer: Issuer,
    log_dir: Path,
    token: str,
) -> None:
    from outpost.modelkit.tiny import build_tiny_embeddings

    models = copy_models(built_models, tmp_path / "models")
    origin = start_origin(models, log_dir)
    edge = start_edge(
        {
            "origins": [{"url": origin.url}],
            "issuers": issuer_settings(issuer, oidc_issuer),
            "health_interval_seconds": 0.3,
        },
        log_dir,
    )
    try:
        with httpx.Client() as client:
            v1 = embed(client, edge, token, "versioned")
            assert (v1.headers["x-cache"], v1.headers["x-model-version"]) == ("MISS", "1")
            assert embed(client, edge, token, "versioned").headers["x-cache"] == "HIT"

            build_tiny_embeddings(models / EMBED_MODEL, version=2, seed=1)

            def origin_serves_v2() -> bool:
                r = client.post(
                    origin.url + "/v1/embeddings", json={"model": EMBED_MODEL, "input": "probe"}
                )
                return r.headers.get("x-model-version") == "2"

            _wait(origin_serves_v2, what="the origin to serve version 2")

            def edge_knows_v2() -> bool:
                models_seen = client.get(edge.url + "/healthz").json()["models"]
                return models_seen.get(f"primary/{EMBED_MODEL}") == "2"

            _wait(edge_knows_v2, what="the edge's health poll to see version 2")
            v2 = embed(client, edge, token, "versioned")
            assert v2.headers["x-cache"] == "MISS"
            assert v2.headers["x-model-version"] == "2"
            assert v2.json()["data"] != v1.json()["data"]
            assert embed(client, edge, token, "versioned").headers["x-cache"] == "HIT"
    finally:
        edge.stop()
        origin.stop()


def test_stale_answer_is_served_when_the_origin_fails(
    built_models: Path, issuer: Issuer, oidc_issuer: Issuer, log_dir: Path, token: str
) -> None:
    origin = start_origin(built_models, log_dir)
    edge = start_edge(
        {
            "origins": [{"url": origin.url}],
            "issuers": issuer_settings(issuer, oidc_issuer),
            "cache_max_ttl_seconds": 1,
            "stale_if_error_seconds": 600,
        },
        log_dir,
    )
    try:
        with httpx.Client() as client:
            fresh = embed(client, edge, token, "stale please")
            assert fresh.headers["x-cache"] == "MISS"
            origin.kill()
            time.sleep(1.2)  # let the 1 s freshness lapse (a wait, not a timing assertion)
            stale = embed(client, edge, token, "stale please")
            assert stale.status_code == 200
            assert stale.headers["x-cache"] == "STALE"
            assert stale.json() == fresh.json()
            never_cached = embed(client, edge, token, "never seen")
            assert never_cached.status_code in (502, 503)
            assert never_cached.headers["content-type"] == "application/problem+json"
    finally:
        edge.stop()
        origin.stop()


def test_cache_memory_stays_within_its_byte_bound(
    issuer: Issuer, oidc_issuer: Issuer, shared_origin: Proc, log_dir: Path, token: str
) -> None:
    """Many distinct answers through an edge with a small `cache_max_bytes`: the cache never
    exceeds it, the oldest answers are evicted (MISS again) and the newest still hit."""
    bound = 64 * 1024
    small = start_edge(
        {
            "origins": [{"url": shared_origin.url}],
            "issuers": issuer_settings(issuer, oidc_issuer),
            "cache_max_bytes": bound,
            "rate_limits": {"inference": {"rate": 1000, "burst": 1000}},
        },
        log_dir,
    )
    try:
        with httpx.Client() as client:
            texts = [f"bounded cache sentence number {i}" for i in range(60)]
            for text in texts:
                assert embed(client, small, token, text).headers["x-cache"] == "MISS"
            health = client.get(small.url + "/healthz").json()
            assert 0 < health["cache_bytes"] <= bound
            assert health["cache_entries"] < len(texts)  # some were evicted
            assert embed(client, small, token, texts[-1]).headers["x-cache"] == "HIT"
            assert embed(client, small, token, texts[0]).headers["x-cache"] == "MISS"
    finally:
        small.stop()
