"""Device trust through the whole edge pipeline (in-process, tests/edge/harness.py): a token
bound to a device key (`cnf.jkt`) needs a fresh DPoP proof from that key on every request, cache
hits included, and replicas sharing Redis refuse a proof another accepted (each refuses its
own when Redis is down); app attestation per
route class refuses, counts or ignores what fails.
The attestation issuer here is the in-memory one of the harness, App Check-shaped (Google's
endpoint cannot be reached from here)."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
import redis.asyncio as redis_client

from edge.auth.dpop import REPLICA_CLOCK_SLACK
from edge.limits.stores import RedisStore
from outpost.devicekey import DeviceKey
from tests.edge.conftest import Issuer
from tests.edge.harness import EdgeUnderTest, json_answer, make_issuer
from tests.redis_server import RedisServer

URL = "http://edge.test/v1/embeddings"
ATTEST = "https://attest.test"


@pytest.fixture
def device() -> DeviceKey:
    return DeviceKey()


def bound_token(issuer: Issuer, key: DeviceKey, **claims: Any) -> str:
    return issuer.token("ed-1", cnf={"jkt": key.jkt}, client_id="demo-app", **claims)


async def call(
    edge: EdgeUnderTest, token: str, proof: str | None, scheme: str = "DPoP", text: str = "x"
) -> Any:
    headers = {"authorization": f"{scheme} {token}"}
    if proof is not None:
        headers["dpop"] = proof
    return await edge.client.post(
        "/v1/embeddings", json={"model": "tiny-embed", "input": text}, headers=headers
    )


def assert_dpop_refusal(resp: Any, error: str) -> None:
    assert resp.status_code == 401, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.headers["www-authenticate"].startswith("DPoP ")
    assert f'error="{error}"' in resp.headers["www-authenticate"]


async def test_a_bound_token_with_a_fresh_proof_is_served_and_hits_the_cache(
    make_edge: Any, mem_issuer: Issuer, device: DeviceKey
) -> None:
    edge: EdgeUnderTest = make_edge()
    token = bound_token(mem_issuer, device)
    first = await call(edge, token, device.proof("POST", URL, token))
    assert first.status_code == 200, first.text
    second = await call(edge, token, device.proof("POST", URL, token))
    assert (second.status_code, second.headers["x-cache"]) == (200, "HIT")


async def test_a_bound_token_without_its_key_is_useless(
    make_edge: Any, mem_issuer: Issuer, device: DeviceKey
) -> None:
    """The stolen-token cases: no proof, Bearer instead of DPoP, a proof from another key."""
    edge: EdgeUnderTest = make_edge()
    token = bound_token(mem_issuer, device)
    assert (await call(edge, token, device.proof("POST", URL, token))).status_code == 200
    assert_dpop_refusal(await call(edge, token, None), "invalid_dpop_proof")
    assert_dpop_refusal(await call(edge, token, None, scheme="Bearer"), "invalid_token")
    thief = DeviceKey()
    assert_dpop_refusal(await call(edge, token, thief.proof("POST", URL, token)), "invalid_token")
    assert edge.origin.inference_calls()[-1:] and len(edge.origin.inference_calls()) == 1


async def test_a_proof_is_good_for_one_request_only(
    make_edge: Any, mem_issuer: Issuer, device: DeviceKey
) -> None:
    edge: EdgeUnderTest = make_edge()
    token = bound_token(mem_issuer, device)
    proof = device.proof("POST", URL, token)
    assert (await call(edge, token, proof)).status_code == 200
    assert_dpop_refusal(await call(edge, token, proof), "invalid_dpop_proof")  # replayed
    for bad in (
        device.proof("GET", URL, token),  # another method
        device.proof("POST", "http://edge.test/v1/classifications", token),  # another URL
        device.proof("POST", URL, "another-token"),  # for another access token
        device.proof("POST", URL, token, iat=time.time() - 3600),  # stale
        device.proof("POST", URL, token, iat=time.time() + 3600),  # from the future
    ):
        assert_dpop_refusal(await call(edge, token, bad), "invalid_dpop_proof")


async def test_malformed_proofs_are_401_never_500(
    make_edge: Any, mem_issuer: Issuer, device: DeviceKey
) -> None:
    edge: EdgeUnderTest = make_edge()
    token = bound_token(mem_issuer, device)
    good = device.proof("POST", URL, token)
    for proof in ("", "x", "a.b.c", good + "x", good.replace(".", "..", 1), "x" * 9000):
        resp = await call(edge, token, proof)
        assert resp.status_code in (400, 401), (proof[:20], resp.text)


async def test_an_unbound_bearer_token_needs_no_proof_unless_the_route_class_says(
    make_edge: Any, mem_issuer: Issuer, device: DeviceKey
) -> None:
    plain = mem_issuer.token("ed-1")
    edge: EdgeUnderTest = make_edge()
    assert (await call(edge, plain, None, scheme="Bearer")).status_code == 200
    strict: EdgeUnderTest = make_edge({"dpop": {"require_for": ["inference"]}})
    assert_dpop_refusal(await call(strict, plain, None, scheme="Bearer"), "invalid_token")
    token = bound_token(mem_issuer, device)
    assert (await call(strict, token, device.proof("POST", URL, token))).status_code == 200


# -- replicas sharing Redis --------------------------------------------------------------------
async def test_replicas_sharing_redis_refuse_a_proof_another_replica_accepted(
    make_edge: Any, mem_issuer: Issuer, device: DeviceKey, redis: RedisServer, monkeypatch: Any
) -> None:
    """Two in-process edges, each with its own replay cache and its own Redis client, share a
    real redis-server for quotas: the proof's id goes with the quota charge, so a proof replayed
    to the other replica is refused too (uncharged), and is kept no longer than a proof lives;
    a request its quota refuses stores nothing."""
    from tests.edge.harness import FakePlatform

    stores: list[RedisStore] = []

    def shared(self: Any, config: Any) -> RedisStore:
        stores.append(RedisStore(config.quota_redis_url, config.quota_timeout_seconds))
        return stores[-1]

    monkeypatch.setattr(FakePlatform, "quota_store", shared)
    settings = {
        "quota_store": "redis",
        "quota_redis_url": redis.url,
        "rate_limits": {"inference": {"rate": 0.001, "burst": 3}},
    }
    first, second = make_edge(settings), make_edge(settings)
    token = bound_token(mem_issuer, device)
    proof = device.proof("POST", URL, token)
    try:
        served = await call(first, token, proof)
        assert served.status_code == 200, served.text
        assert served.headers["ratelimit"].startswith('"inference";r=2')
        replayed = await call(second, token, proof)
        assert_dpop_refusal(replayed, "invalid_dpop_proof")
        assert "already used" in replayed.json()["detail"]
        assert second.metric("outpost_edge_auth_failures_total") == 1
        fresh = await call(second, token, device.proof("POST", URL, token), text="y")
        assert fresh.status_code == 200, fresh.text
        assert fresh.headers["ratelimit"].startswith('"inference";r=1')  # the replay: uncharged
        client = redis_client.Redis.from_url(redis.url)
        keys = [k async for k in client.scan_iter("dpop|*")]
        assert len(keys) == 2
        dpop = first.config.dpop
        lifetime = dpop.max_age_seconds + dpop.clock_skew_seconds + REPLICA_CLOCK_SLACK
        ttls = [await client.pttl(k) for k in keys]
        assert all(0 < ttl <= lifetime * 1000 for ttl in ttls), ttls
        last = await call(first, token, device.proof("POST", URL, token), text="z")
        assert last.status_code == 200, last.text
        limited = await call(second, token, device.proof("POST", URL, token), text="w")
        assert limited.status_code == 429, limited.text
        assert len([k async for k in client.scan_iter("dpop|*")]) == 3  # not the refused one
        await client.aclose()
    finally:
        for store in stores:
            await store.aclose()


async def test_with_redis_down_a_replica_still_refuses_a_proof_it_accepted(
    make_edge: Any, mem_issuer: Issuer, device: DeviceKey, redis: RedisServer, monkeypatch: Any
) -> None:
    """The quota store's fail mode `local`: with Redis stopped, requests are charged per replica
    and each replica's own replay cache still refuses a proof it accepted; a proof replayed to
    another replica then gets through, as docs/device-trust.md says."""
    from tests.edge.harness import FakePlatform

    stores: list[RedisStore] = []

    def shared(self: Any, config: Any) -> RedisStore:
        stores.append(RedisStore(config.quota_redis_url, config.quota_timeout_seconds))
        return stores[-1]

    monkeypatch.setattr(FakePlatform, "quota_store", shared)
    settings = {"quota_store": "redis", "quota_redis_url": redis.url, "quota_fail_mode": "local"}
    first, second = make_edge(settings), make_edge(settings)
    token = bound_token(mem_issuer, device)
    try:
        assert (await call(first, token, device.proof("POST", URL, token))).status_code == 200
        redis.stop()
        proof = device.proof("POST", URL, token)
        served = await call(first, token, proof, text="y")
        assert served.status_code == 200, served.text
        assert first.metric("outpost_edge_quota_store_errors_total") >= 1
        replayed = await call(first, token, proof, text="y")
        assert_dpop_refusal(replayed, "invalid_dpop_proof")
        assert (await call(second, token, proof, text="y")).status_code == 200  # per replica
    finally:
        for store in stores:
            await store.aclose()


# -- attestation --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def attester() -> Issuer:
    return make_issuer(ATTEST, ("att-1", "RS256"))


def attestation_token(attester: Issuer, **claims: Any) -> str:
    now = int(time.time())
    base = {"iss": ATTEST, "aud": ["projects/42"], "sub": "app-1", "iat": now, "exp": now + 3600}
    base.update(claims)
    key = attester.keys["att-1"]
    return jwt.encode(base, key.private, algorithm="RS256", headers={"kid": "att-1", "typ": "JWT"})


def attesting_edge(make_edge: Any, attester: Issuer, mode: str) -> EdgeUnderTest:
    settings = {
        "modes": {"inference": mode},
        "issuers": [
            {
                "issuer": ATTEST,
                "jwks_url": ATTEST + "/keys",
                "audiences": ["projects/42"],
                "app_ids": ["app-1"],
            }
        ],
    }
    edge: EdgeUnderTest = make_edge({"attestation": settings})

    async def keys(call: Any) -> Any:
        return json_answer(200, attester.jwks())

    edge.platform.serve(ATTEST, keys)
    return edge


async def test_enforced_attestation_refuses_what_fails_and_lets_the_rest_through(
    make_edge: Any, mem_issuer: Issuer, attester: Issuer
) -> None:
    edge = attesting_edge(make_edge, attester, "enforce")
    token = mem_issuer.token("ed-1")

    async def with_attestation(value: str | None) -> Any:
        headers = {"authorization": f"Bearer {token}"}
        if value is not None:
            headers["x-firebase-appcheck"] = value
        return await edge.client.post(
            "/v1/embeddings", json={"model": "tiny-embed", "input": "a"}, headers=headers
        )

    assert (await with_attestation(attestation_token(attester))).status_code == 200
    forged = make_issuer(ATTEST, ("att-1", "RS256"))  # same kid, another key
    for bad in (
        None,
        "garbage",
        attestation_token(forged),
        attestation_token(attester, exp=int(time.time()) - 600),
        attestation_token(attester, sub="someone-else"),
        attestation_token(attester, aud=["projects/7"]),
    ):
        resp = await with_attestation(bad)
        assert resp.status_code == 401, resp.text
        assert json.loads(resp.text)["type"] == "urn:outpost:problem:attestation-failed"
    assert edge.metric("outpost_edge_attestation_total", result="valid") == 1
    assert len(edge.origin.inference_calls()) == 1


async def test_monitored_attestation_counts_failures_and_allows(
    make_edge: Any, mem_issuer: Issuer, attester: Issuer
) -> None:
    edge = attesting_edge(make_edge, attester, "monitor")
    token = mem_issuer.token("ed-1")
    resp = await edge.embed(token, "unattested")
    assert resp.status_code == 200
    assert edge.metric("outpost_edge_attestation_total", mode="monitor", result="missing") == 1
