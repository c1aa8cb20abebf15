"""The edge verifies tokens itself: the accept/reject matrix, JWKS refresh bounds, scopes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.edge.conftest import (
    Issuer,
    Proc,
    b64url,
    embed,
    issuer_settings,
    serve_issuer,
    start_edge,
)


@pytest.fixture(scope="module")
def edge(issuer: Issuer, oidc_issuer: Issuer, shared_origin: Proc, log_dir: Path) -> Iterator[Proc]:
    proc = start_edge(
        {
            "origins": [{"url": shared_origin.url}],
            "issuers": issuer_settings(issuer, oidc_issuer),
            "rate_limits": {"default": {"rate": 1000, "burst": 1000}},
        },
        log_dir,
    )
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as c:
        yield c


def assert_invalid_token(resp: httpx.Response) -> None:
    assert resp.status_code == 401, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    challenge = resp.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="outpost"')
    assert 'error="invalid_token"' in challenge
    assert resp.json()["request_id"] == resp.headers["x-request-id"]


@pytest.mark.parametrize("kid", ["es-1", "rs-1"])
def test_external_oidc_issuer_tokens_found_by_discovery_are_accepted(
    edge: Proc, client: httpx.Client, oidc_issuer: Issuer, kid: str
) -> None:
    resp = embed(client, edge, oidc_issuer.token(kid), f"oidc {kid}")
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-model-name"] == "tiny-embed"


def test_valid_eddsa_token_reaches_the_origin(
    edge: Proc, client: httpx.Client, issuer: Issuer
) -> None:
    resp = embed(client, edge, issuer.token("ed-1"), "hello")
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-model-version"]
    assert resp.headers["x-cache"] in ("MISS", "HIT")


def test_missing_token_is_401_with_a_bearer_challenge(edge: Proc, client: httpx.Client) -> None:
    resp = embed(client, edge, None, "hello")
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == 'Bearer realm="outpost", scope="inference"'
    assert resp.json()["type"] == "urn:outpost:problem:unauthorized"


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
def test_bad_claims_are_rejected(
    edge: Proc, client: httpx.Client, issuer: Issuer, claims: dict
) -> None:
    assert_invalid_token(embed(client, edge, issuer.token("ed-1", **claims), "x"))


def test_token_from_an_untrusted_issuer_is_rejected(
    edge: Proc, client: httpx.Client, issuer: Issuer
) -> None:
    token = issuer.token("ed-1", iss="https://evil.example")
    assert_invalid_token(embed(client, edge, token, "x"))


def test_issuer_cannot_sign_for_another_trusted_issuer(
    edge: Proc, client: httpx.Client, issuer: Issuer, oidc_issuer: Issuer
) -> None:
    # Signed with issuer's key but claiming the OIDC issuer: that issuer's JWKS lacks the kid.
    token = issuer.token("ed-1", iss=oidc_issuer.url)
    assert_invalid_token(embed(client, edge, token, "x"))


def test_alg_none_is_rejected(edge: Proc, client: httpx.Client, issuer: Issuer) -> None:
    signing_input, _ = issuer.unsigned({"alg": "none", "kid": "ed-1"})
    assert_invalid_token(embed(client, edge, signing_input + ".", "x"))


def test_hs256_signed_with_the_public_key_is_rejected(
    edge: Proc, client: httpx.Client, oidc_issuer: Issuer
) -> None:
    assert_invalid_token(embed(client, edge, oidc_issuer.hs256_with_public_key("rs-1"), "x"))


def test_alg_not_matching_the_key_type_is_rejected(
    edge: Proc, client: httpx.Client, oidc_issuer: Issuer
) -> None:
    # A real ES256 signature presented as RS256 under the EC key's kid.
    token = oidc_issuer.token("es-1")
    _, payload, sig = token.split(".")
    forged = b64url(b'{"alg":"RS256","kid":"es-1"}')
    assert_invalid_token(embed(client, edge, f"{forged}.{payload}.{sig}", "x"))


def test_tampered_payload_is_rejected(edge: Proc, client: httpx.Client, issuer: Issuer) -> None:
    header, _, sig = issuer.token("ed-1").split(".")
    _, payload = issuer.unsigned({}, sub="admin")
    assert_invalid_token(embed(client, edge, f"{header}.{payload}.{sig}", "x"))


def test_garbage_token_is_rejected(edge: Proc, client: httpx.Client) -> None:
    assert_invalid_token(embed(client, edge, "not.a.jwt", "x"))
    assert_invalid_token(embed(client, edge, "abc", "x"))


def test_missing_scope_is_403_insufficient_scope(
    edge: Proc, client: httpx.Client, issuer: Issuer
) -> None:
    resp = embed(client, edge, issuer.token("ed-1", scope="models:read"), "x")
    assert resp.status_code == 403
    assert 'error="insufficient_scope"' in resp.headers["www-authenticate"]
    assert 'scope="inference"' in resp.headers["www-authenticate"]
    resp = client.get(
        edge.url + "/v1/models",
        headers={"authorization": f"Bearer {issuer.token('ed-1', scope='inference')}"},
    )
    assert resp.status_code == 403
    resp = client.get(
        edge.url + "/v1/models",
        headers={"authorization": f"Bearer {issuer.token('ed-1', scope='models:read')}"},
    )
    assert resp.status_code == 200
    assert "etag" in resp.headers


def test_unknown_kid_triggers_one_bounded_jwks_refresh(
    edge: Proc, client: httpx.Client, issuer: Issuer
) -> None:
    assert embed(client, edge, issuer.token("ed-1"), "warm").status_code == 200
    before = issuer.hits["/keys"]
    stranger = issuer.add_key("ed-unpublished", "EdDSA", publish=False)
    assert_invalid_token(embed(client, edge, issuer.token(stranger.kid), "x"))
    assert issuer.hits["/keys"] == before + 1
    # More unknown kids inside the refresh interval (30 s default) do not hit the issuer again.
    for _ in range(5):
        assert_invalid_token(embed(client, edge, issuer.token(stranger.kid), "x"))
    assert issuer.hits["/keys"] == before + 1


def test_rotated_key_is_picked_up_by_the_unknown_kid_refresh(
    client: httpx.Client, issuer: Issuer, oidc_issuer: Issuer, shared_origin: Proc, log_dir: Path
) -> None:
    rotating = serve_issuer(Issuer())
    rotating.add_key("k-1", "EdDSA")
    edge = start_edge(
        {
            "origins": [{"url": shared_origin.url}],
            "issuers": [
                {
                    "issuer": rotating.url,
                    "jwks_url": rotating.url + "/keys",
                    "refresh_min_interval_seconds": 0,
                }
            ],
        },
        log_dir,
    )
    try:
        assert embed(client, edge, rotating.token("k-1"), "before").status_code == 200
        rotating.add_key("k-2", "EdDSA")
        resp = embed(client, edge, rotating.token("k-2"), "after")
        assert resp.status_code == 200, resp.text
    finally:
        edge.stop()
        assert rotating.server is not None
        rotating.server.shutdown()


def test_token_endpoint_and_jwks_are_forwarded_without_auth(
    edge: Proc, client: httpx.Client
) -> None:
    resp = client.get(edge.url + "/.well-known/jwks.json")
    assert resp.status_code != 401
    assert "x-request-id" in resp.headers
