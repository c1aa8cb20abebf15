"""Edge cache: HIT/MISS/BYPASS, key normalisation, coalescing, version change, stale-if-error.
In-process (tests/edge/harness.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.edge.conftest import EMBED_MODEL, Issuer
from tests.edge.harness import EdgeUnderTest


@pytest.fixture
def edge(make_edge: Any) -> EdgeUnderTest:
    return make_edge({"gzip_min_bytes": 200})


@pytest.fixture(scope="module")
def token(mem_issuer: Issuer) -> str:
    return mem_issuer.token("ed-1", sub="cache-user")


async def test_second_identical_request_is_a_hit_with_the_same_body(
    edge: EdgeUnderTest, token: str
) -> None:
    first = await edge.embed(token, "cache me")
    assert first.status_code == 200
    assert first.headers["x-cache"] == "MISS"
    # Same JSON, different key order and whitespace: the normalised key matches.
    second = await edge.client.post(
        "/v1/embeddings",
        content=b'{ "input" : "cache me",   "model": "tiny-embed" }',
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
    )
    assert second.status_code == 200
    assert second.headers["x-cache"] == "HIT"
    assert second.json() == first.json()
    assert second.headers["x-model-version"] == first.headers["x-model-version"]
    assert len(edge.origin.inference_calls()) == 1


async def test_client_no_cache_and_no_store_bypass_the_cache(
    edge: EdgeUnderTest, token: str
) -> None:
    assert (await edge.embed(token, "bypass")).headers["x-cache"] == "MISS"
    for directive in ("no-cache", "no-store"):
        resp = await edge.embed(token, "bypass", headers={"cache-control": directive})
        assert resp.status_code == 200
        assert resp.headers["x-cache"] == "BYPASS"
    assert (await edge.embed(token, "bypass")).headers["x-cache"] == "HIT"


async def test_concurrent_identical_misses_make_one_origin_call(
    edge: EdgeUnderTest, token: str
) -> None:
    edge.origin.delay = 0.2  # the first call is still out when the others arrive
    before = edge.metric("outpost_edge_origin_attempts_total")
    responses = await asyncio.gather(*(edge.embed(token, "coalesce me") for _ in range(12)))
    assert [r.status_code for r in responses] == [200] * 12
    assert sorted(r.headers["x-cache"] for r in responses).count("MISS") == 1
    assert len({r.content for r in responses}) == 1
    assert edge.metric("outpost_edge_origin_attempts_total") - before == 1


async def test_malformed_json_is_400_problem_at_the_edge(edge: EdgeUnderTest, token: str) -> None:
    resp = await edge.client.post(
        "/v1/embeddings",
        content=b"{not json",
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
    )
    assert resp.status_code == 400
    assert resp.headers["content-type"] == "application/problem+json"
    assert edge.origin.inference_calls() == []


async def test_large_responses_are_gzipped_when_accepted(edge: EdgeUnderTest, token: str) -> None:
    text = " ".join(f"word{i}" for i in range(50))
    resp = await edge.client.post(
        "/v1/embeddings",
        json={"model": EMBED_MODEL, "input": [text] * 8},
        headers={"authorization": f"Bearer {token}", "accept-encoding": "gzip"},
    )
    assert resp.status_code == 200
    assert resp.headers["content-encoding"] == "gzip"
    assert len(resp.json()["data"]) == 8


async def test_new_model_version_invalidates_cached_answers(make_edge: Any, token: str) -> None:
    edge = make_edge({"health_interval_seconds": 0.3})
    v1 = await edge.embed(token, "versioned")
    assert (v1.headers["x-cache"], v1.headers["x-model-version"]) == ("MISS", "1")
    assert (await edge.embed(token, "versioned")).headers["x-cache"] == "HIT"

    await edge.platform.settle()  # the health round the first request started
    edge.origin.models[EMBED_MODEL] = "2"  # the origin hot-swapped to version 2
    edge.platform.advance(0.5)  # a health round is due: the next request starts one
    await edge.client.get("/v1/models", headers={"authorization": f"Bearer {token}"})
    await edge.platform.settle()
    models_seen = (await edge.client.get("/healthz")).json()["models"]
    assert models_seen.get(f"primary/{EMBED_MODEL}") == "2"

    v2 = await edge.embed(token, "versioned")
    assert v2.headers["x-cache"] == "MISS"
    assert v2.headers["x-model-version"] == "2"
    assert v2.json()["data"] != v1.json()["data"]
    assert (await edge.embed(token, "versioned")).headers["x-cache"] == "HIT"


async def test_stale_answer_is_served_when_the_origin_fails(make_edge: Any, token: str) -> None:
    edge = make_edge({"cache_max_ttl_seconds": 1, "stale_if_error_seconds": 600})
    fresh = await edge.embed(token, "stale please")
    assert fresh.headers["x-cache"] == "MISS"
    edge.origin.down = True
    edge.platform.advance(1.2)  # past the 1 s freshness
    stale = await edge.embed(token, "stale please")
    assert stale.status_code == 200
    assert stale.headers["x-cache"] == "STALE"
    assert stale.json() == fresh.json()
    never_cached = await edge.embed(token, "never seen")
    assert never_cached.status_code in (502, 503)
    assert never_cached.headers["content-type"] == "application/problem+json"


async def test_cache_memory_stays_within_its_byte_bound(make_edge: Any, token: str) -> None:
    """Many distinct answers through an edge with a small `cache_max_bytes`: the cache never
    exceeds it, the oldest answers are evicted (MISS again) and the newest still hit."""
    bound = 16 * 1024
    small = make_edge(
        {"cache_max_bytes": bound, "rate_limits": {"inference": {"rate": 1000, "burst": 1000}}}
    )
    texts = [f"bounded cache sentence number {i}" for i in range(60)]
    for text in texts:
        assert (await small.embed(token, text)).headers["x-cache"] == "MISS"
    health = (await small.client.get("/healthz")).json()
    assert 0 < health["cache_bytes"] <= bound
    assert health["cache_entries"] < len(texts)  # some were evicted
    assert (await small.embed(token, texts[-1])).headers["x-cache"] == "HIT"
    assert (await small.embed(token, texts[0])).headers["x-cache"] == "MISS"


# -- cache scope: whose earlier answers a subject may be served ----------------------------------
@pytest.fixture(scope="module")
def other_token(mem_issuer: Issuer) -> str:
    return mem_issuer.token("ed-1", sub="someone-else")


async def test_a_subject_scoped_answer_is_never_a_hit_for_another_subject(
    edge: EdgeUnderTest, token: str, other_token: str
) -> None:
    """With the default scope (`subject`), a HIT or an Age would tell one caller what another
    sent and when: each subject's answers are cached apart."""
    edge.origin.scopes[EMBED_MODEL] = "subject"
    assert (await edge.embed(token, "my secret question")).headers["x-cache"] == "MISS"
    edge.platform.advance(30)
    theirs = await edge.embed(other_token, "my secret question")
    assert theirs.headers["x-cache"] == "MISS"
    assert "age" not in theirs.headers
    mine = await edge.embed(token, "my secret question")
    assert mine.headers["x-cache"] == "HIT"
    assert int(mine.headers["age"]) >= 30
    assert len(edge.origin.inference_calls()) == 2
    # ...and no shared cache downstream (a proxy, a CDN) may store it for someone else.
    for resp in (theirs, mine):
        assert resp.headers["cache-control"] == "private, max-age=3600"


async def test_an_origin_that_says_nothing_of_scope_gets_per_subject_caching(
    edge: EdgeUnderTest, token: str, other_token: str
) -> None:
    assert EMBED_MODEL not in edge.origin.scopes  # an older origin: no header, no field
    assert (await edge.embed(token, "unsaid scope")).headers["x-cache"] == "MISS"
    assert (await edge.embed(other_token, "unsaid scope")).headers["x-cache"] == "MISS"
    assert (await edge.embed(other_token, "unsaid scope")).headers["x-cache"] == "HIT"


async def test_an_unknown_scope_value_is_treated_as_subject(
    edge: EdgeUnderTest, token: str, other_token: str
) -> None:
    edge.origin.scopes[EMBED_MODEL] = "everyone"
    assert (await edge.embed(token, "odd scope")).headers["x-cache"] == "MISS"
    assert (await edge.embed(other_token, "odd scope")).headers["x-cache"] == "MISS"


async def test_a_shared_model_answers_every_subject_from_one_entry(
    edge: EdgeUnderTest, token: str, other_token: str
) -> None:
    edge.origin.scopes[EMBED_MODEL] = "shared"
    first = await edge.embed(token, "public sentence")
    assert first.headers["x-cache"] == "MISS"
    theirs = await edge.embed(other_token, "public sentence")
    assert theirs.headers["x-cache"] == "HIT"
    assert theirs.json() == first.json()
    assert (
        theirs.headers["cache-control"]
        == first.headers["cache-control"]
        == ("public, max-age=3600")
    )
    assert len(edge.origin.inference_calls()) == 1


async def test_concurrent_misses_are_not_coalesced_across_subjects(
    edge: EdgeUnderTest, mem_issuer: Issuer
) -> None:
    """Coalescing is keyed like the cache: a caller never waits on, or is answered by, another
    subject's in-flight request for a subject-scoped model."""
    edge.origin.scopes[EMBED_MODEL] = "subject"
    edge.origin.delay = 0.2
    tokens = [mem_issuer.token("ed-1", sub=f"coalesce-{i}") for i in range(4)]
    responses = await asyncio.gather(*(edge.embed(t, "same words") for t in tokens * 3))
    assert [r.status_code for r in responses] == [200] * 12
    assert [r.headers["x-cache"] for r in responses].count("MISS") == 4
    assert len(edge.origin.inference_calls()) == 4


async def test_the_scope_is_learned_from_the_model_listing(
    make_edge: Any, token: str, other_token: str
) -> None:
    """The pool's listing poll reports each model's scope: a shared model's first answer is
    keyed as shared even before any inference answer carried the header."""
    edge = make_edge()
    edge.origin.scopes[EMBED_MODEL] = "shared"
    await edge.client.get("/v1/models", headers={"authorization": f"Bearer {token}"})
    await edge.platform.settle()
    assert edge.app.pool.versions.scope("primary", EMBED_MODEL) == "shared"
    assert (await edge.embed(token, "listed shared")).headers["x-cache"] == "MISS"
    assert (await edge.embed(other_token, "listed shared")).headers["x-cache"] == "HIT"
