"""Device trust through the whole edge pipeline (in-process, tests/edge/harness.py): a token
bound to a device key (`cnf.jkt`) needs a fresh DPoP proof from that key on every request, cache
hits included; app attestation per route class refuses, counts or ignores what fails.
The attestation issuer here is the in-memory one of the harness, App Check-shaped (Google's
endpoint cannot be reached from here)."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest

from outpost.devicekey import DeviceKey
from tests.edge.conftest import Issuer
from tests.edge.harness import EdgeUnderTest, json_answer, make_issuer

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
