"""The edge verifies tokens itself: the accept/reject matrix, JWKS refresh bounds, scopes.
In-process (tests/edge/harness.py): real signatures against issuers on the fake network."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.edge.conftest import Issuer, b64url
from tests.edge.harness import EdgeUnderTest, make_issuer, serve_issuer_in_memory


@pytest.fixture
def edge(make_edge: Any) -> EdgeUnderTest:
    return make_edge({"rate_limits": {"default": {"rate": 1000, "burst": 1000}}})


def assert_invalid_token(resp: httpx.Response) -> None:
    assert resp.status_code == 401, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    challenge = resp.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="outpost"')
    assert 'error="invalid_token"' in challenge
    assert resp.json()["request_id"] == resp.headers["x-request-id"]


@pytest.mark.parametrize("kid", ["es-1", "rs-1"])
async def test_external_oidc_issuer_tokens_found_by_discovery_are_accepted(
    edge: EdgeUnderTest, mem_oidc: Issuer, kid: str
) -> None:
    resp = await edge.embed(mem_oidc.token(kid), f"oidc {kid}")
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-model-name"] == "tiny-embed"


async def test_valid_eddsa_token_reaches_the_origin(
    edge: EdgeUnderTest, mem_issuer: Issuer
) -> None:
    resp = await edge.embed(mem_issuer.token("ed-1"), "hello")
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-model-version"]
    assert resp.headers["x-cache"] in ("MISS", "HIT")
    assert len(edge.origin.inference_calls()) == 1


async def test_missing_token_is_401_with_a_bearer_challenge(edge: EdgeUnderTest) -> None:
    resp = await edge.embed(None, "hello")
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == 'Bearer realm="outpost", scope="inference"'
    assert resp.json()["type"] == "urn:outpost:problem:unauthorized"
    assert edge.origin.inference_calls() == []


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"exp": int(time.time()) - 3600}, id="expired"),
        pytest.param({"nbf": int(time.time()) + 3600}, id="nbf-in-future"),
        pytest.param({"aud": "someone-else"}, id="wrong-audience"),
        pytest.param({"sub": None}, id="no-subject"),
        pytest.param({"exp": None}, id="no-expiry"),
    ],
)
async def test_bad_claims_are_rejected(
    edge: EdgeUnderTest, mem_issuer: Issuer, claims: dict
) -> None:
    assert_invalid_token(await edge.embed(mem_issuer.token("ed-1", **claims), "x"))


async def test_token_from_an_untrusted_issuer_is_rejected(
    edge: EdgeUnderTest, mem_issuer: Issuer
) -> None:
    token = mem_issuer.token("ed-1", iss="https://evil.example")
    assert_invalid_token(await edge.embed(token, "x"))


async def test_issuer_cannot_sign_for_another_trusted_issuer(
    edge: EdgeUnderTest, mem_issuer: Issuer, mem_oidc: Issuer
) -> None:
    # Signed with issuer's key but claiming the OIDC issuer: that issuer's JWKS lacks the kid.
    token = mem_issuer.token("ed-1", iss=mem_oidc.url)
    assert_invalid_token(await edge.embed(token, "x"))


async def test_alg_none_is_rejected(edge: EdgeUnderTest, mem_issuer: Issuer) -> None:
    signing_input, _ = mem_issuer.unsigned({"alg": "none", "kid": "ed-1"})
    assert_invalid_token(await edge.embed(signing_input + ".", "x"))


async def test_hs256_signed_with_the_public_key_is_rejected(
    edge: EdgeUnderTest, mem_oidc: Issuer
) -> None:
    assert_invalid_token(await edge.embed(mem_oidc.hs256_with_public_key("rs-1"), "x"))


async def test_alg_not_matching_the_key_type_is_rejected(
    edge: EdgeUnderTest, mem_oidc: Issuer
) -> None:
    # A real ES256 signature presented as RS256 under the EC key's kid.
    token = mem_oidc.token("es-1")
    _, payload, sig = token.split(".")
    forged = b64url(b'{"alg":"RS256","kid":"es-1"}')
    assert_invalid_token(await edge.embed(f"{forged}.{payload}.{sig}", "x"))


async def test_tampered_payload_is_rejected(edge: EdgeUnderTest, mem_issuer: Issuer) -> None:
    header, _, sig = mem_issuer.token("ed-1").split(".")
    _, payload = mem_issuer.unsigned({}, sub="admin")
    assert_invalid_token(await edge.embed(f"{header}.{payload}.{sig}", "x"))


async def test_garbage_token_is_rejected(edge: EdgeUnderTest) -> None:
    assert_invalid_token(await edge.embed("not.a.jwt", "x"))
    assert_invalid_token(await edge.embed("abc", "x"))


async def test_missing_scope_is_403_insufficient_scope(
    edge: EdgeUnderTest, mem_issuer: Issuer
) -> None:
    resp = await edge.embed(mem_issuer.token("ed-1", scope="models:read"), "x")
    assert resp.status_code == 403
    assert 'error="insufficient_scope"' in resp.headers["www-authenticate"]
    assert 'scope="inference"' in resp.headers["www-authenticate"]
    inference_only = {"authorization": f"Bearer {mem_issuer.token('ed-1', scope='inference')}"}
    resp = await edge.client.get("/v1/models", headers=inference_only)
    assert resp.status_code == 403
    models_read = {"authorization": f"Bearer {mem_issuer.token('ed-1', scope='models:read')}"}
    resp = await edge.client.get("/v1/models", headers=models_read)
    assert resp.status_code == 200
    assert "etag" in resp.headers


async def test_unknown_kid_triggers_one_bounded_jwks_refresh(
    edge: EdgeUnderTest, mem_issuer: Issuer
) -> None:
    assert (await edge.embed(mem_issuer.token("ed-1"), "warm")).status_code == 200
    before = mem_issuer.hits["/keys"]
    stranger = mem_issuer.add_key("ed-unpublished", "EdDSA", publish=False)
    assert_invalid_token(await edge.embed(mem_issuer.token(stranger.kid), "x"))
    assert mem_issuer.hits["/keys"] == before + 1
    # More unknown kids inside the refresh interval (30 s default) do not hit the issuer again.
    for _ in range(5):
        assert_invalid_token(await edge.embed(mem_issuer.token(stranger.kid), "x"))
    assert mem_issuer.hits["/keys"] == before + 1


async def test_rotated_key_is_picked_up_by_the_unknown_kid_refresh(make_edge: Any) -> None:
    rotating = make_issuer("https://rotating.test", ("k-1", "EdDSA"))
    edge = make_edge(
        {
            "issuers": [
                {
                    "issuer": rotating.url,
                    "jwks_url": rotating.url + "/keys",
                    "refresh_min_interval_seconds": 0,
                }
            ]
        }
    )
    serve_issuer_in_memory(edge.platform, rotating)
    assert (await edge.embed(rotating.token("k-1"), "before")).status_code == 200
    rotating.add_key("k-2", "EdDSA")
    resp = await edge.embed(rotating.token("k-2"), "after")
    assert resp.status_code == 200, resp.text


async def test_token_endpoint_and_jwks_are_forwarded_without_auth(edge: EdgeUnderTest) -> None:
    resp = await edge.client.get("/.well-known/jwks.json")
    assert resp.status_code != 401
    assert "x-request-id" in resp.headers
    assert "/.well-known/jwks.json" in [c.path for c in edge.origin.calls]
