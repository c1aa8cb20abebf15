"""Devices are their keys (RFC 9449 at the token endpoint), against real OpenBao and the issuer
served by uvicorn: an attacker holding the app's shipped API key cannot register an id whose key
they lack, nor use a refresh token without the device key, and bad proofs are 4xx, never 500."""

from __future__ import annotations

import base64
import json
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from origin.identity.issuer import GRANT_DEVICE
from outpost import devicekey
from outpost.devicekey import DeviceKey
from tests.vault.conftest import TOKEN_ENDPOINT, DevVault, ServedApp


def post(url: str, data: dict, proof: str | None = None, **headers: str) -> httpx.Response:
    if proof is not None:
        headers["DPoP"] = proof
    return httpx.post(f"{url}/oauth/token", data=data, headers=headers, timeout=10)


def registration(boot) -> dict[str, str]:
    return {"grant_type": GRANT_DEVICE, "api_key": boot.demo_api_key}


def register(served: ServedApp, boot, key: DeviceKey) -> dict:
    resp = post(served.url, registration(boot), key.proof("POST", TOKEN_ENDPOINT))
    assert resp.status_code == 200, resp.text
    return resp.json()


def claims_of(token: str) -> dict:
    return devicekey.decode_unverified(token)


def b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_registration_without_a_proof_is_refused(served: ServedApp, dev_vault: DevVault):
    resp = post(served.url, registration(dev_vault.boot))
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_dpop_proof"


def test_a_device_id_the_caller_cannot_prove_is_refused(served: ServedApp, dev_vault: DevVault):
    victim, attacker = DeviceKey(), DeviceKey()
    data = {**registration(dev_vault.boot), "device_id": victim.jkt}
    resp = post(served.url, data, attacker.proof("POST", TOKEN_ENDPOINT))
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"
    # Without device_id the attacker simply gets their own key's id, never the victim's.
    own = register(served, dev_vault.boot, attacker)
    assert own["device_id"] == attacker.jkt != victim.jkt
    assert claims_of(own["access_token"])["sub"].endswith(attacker.jkt)


def test_tokens_are_bound_to_the_key_and_say_so(served: ServedApp, dev_vault: DevVault):
    key = DeviceKey()
    body = register(served, dev_vault.boot, key)
    assert body["token_type"] == "DPoP"
    assert claims_of(body["access_token"])["cnf"] == {"jkt": key.jkt}
    doc = httpx.get(f"{served.url}/.well-known/openid-configuration", timeout=5).json()
    assert doc["dpop_signing_alg_values_supported"] == ["ES256", "EdDSA"]


def test_refresh_needs_the_same_key_and_a_thief_cannot_revoke_the_family(
    served: ServedApp, dev_vault: DevVault
):
    key, thief = DeviceKey(), DeviceKey()
    rt = register(served, dev_vault.boot, key)["refresh_token"]
    data = {"grant_type": "refresh_token", "refresh_token": rt}
    assert post(served.url, data).json()["error"] == "invalid_dpop_proof"
    stolen = post(served.url, data, thief.proof("POST", TOKEN_ENDPOINT))
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    assert "another device key" in stolen.json()["error_description"]
    # The family is intact: the device still refreshes, and gets a token bound to its key.
    ok = post(served.url, data, key.proof("POST", TOKEN_ENDPOINT))
    assert ok.status_code == 200, ok.text
    assert claims_of(ok.json()["access_token"])["cnf"]["jkt"] == key.jkt


def test_a_replayed_proof_is_refused(served: ServedApp, dev_vault: DevVault):
    key = DeviceKey()
    proof = key.proof("POST", TOKEN_ENDPOINT)
    assert post(served.url, registration(dev_vault.boot), proof).status_code == 200
    again = post(served.url, registration(dev_vault.boot), proof)
    assert again.status_code == 400 and again.json()["error"] == "invalid_dpop_proof"
    assert "already used" in again.json()["error_description"]


def _proofs(key: DeviceKey) -> dict[str, str]:
    """Proofs that must all be refused at the token endpoint, by what is wrong with them."""
    now = time.time()
    es = key.private_key
    good_header = {"typ": "dpop+jwt", "jwk": key.jwk}
    claims = {"jti": "j-1", "htm": "POST", "htu": TOKEN_ENDPOINT, "iat": int(now)}
    ed = ed25519.Ed25519PrivateKey.generate()
    other = ec.generate_private_key(ec.SECP256R1())
    private_jwk = {**key.jwk, "d": "AAAA"}
    return {
        "other URL": key.proof("POST", "http://issuer.test/v1/embeddings"),
        "other method": key.proof("GET", TOKEN_ENDPOINT),
        "too old": key.proof("POST", TOKEN_ENDPOINT, iat=now - 600),
        "from the future": key.proof("POST", TOKEN_ENDPOINT, iat=now + 600),
        "no jti": jwt.encode(
            {k: v for k, v in claims.items() if k != "jti"}, es, "ES256", headers=good_header
        ),
        "huge jti": key.proof("POST", TOKEN_ENDPOINT, jti="j" * 500),
        "string iat": jwt.encode({**claims, "iat": "now"}, es, "ES256", headers=good_header),
        "typ JWT": jwt.encode(claims, es, "ES256", headers={"typ": "JWT", "jwk": key.jwk}),
        "signed by another key": jwt.encode(claims, other, "ES256", headers=good_header),
        "HS256 with the public key": jwt.encode(
            claims, "secret-secret-secret-secret-secret", "HS256", headers=good_header
        ),
        "alg none": f"{b64({'typ': 'dpop+jwt', 'alg': 'none', 'jwk': key.jwk})}.{b64(claims)}.",
        "private key in jwk": jwt.encode(
            claims, es, "ES256", headers={"typ": "dpop+jwt", "jwk": private_jwk}
        ),
        "EdDSA alg with EC key": jwt.encode(claims, ed, "EdDSA", headers=good_header),
        "jwk not an object": jwt.encode(
            claims, es, "ES256", headers={"typ": "dpop+jwt", "jwk": "k"}
        ),
        "jwk with huge coordinates": jwt.encode(
            claims,
            es,
            "ES256",
            headers={"typ": "dpop+jwt", "jwk": {**key.jwk, "x": "A" * 3000}},
        ),
        "oversized": key.proof("POST", TOKEN_ENDPOINT, pad="x" * 5000),
        "garbage": "not.a.jwt",
        "two proofs": key.proof("POST", TOKEN_ENDPOINT) + ", " + key.proof("POST", TOKEN_ENDPOINT),
        "non-ASCII": "é" * 40,
        "empty": "",
    }


@pytest.mark.parametrize("case", sorted(_proofs(DeviceKey())))
def test_bad_proofs_are_refused_as_invalid_dpop_proof(
    served: ServedApp, dev_vault: DevVault, case: str
):
    proof = _proofs(DeviceKey())[case]
    try:
        resp = post(served.url, registration(dev_vault.boot), proof)
    except UnicodeEncodeError:  # httpx will not send it; send the raw bytes
        resp = httpx.post(
            f"{served.url}/oauth/token",
            data=registration(dev_vault.boot),
            headers={"DPoP": proof.encode()},
            timeout=10,
        )
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_dpop_proof", resp.text
    assert resp.headers["cache-control"] == "no-store"


def test_client_credentials_may_bind_a_token_too(served: ServedApp, dev_vault: DevVault):
    data = {
        "grant_type": "client_credentials",
        "client_id": "demo-service",
        "client_secret": dev_vault.boot.demo_client_secret,
    }
    plain = post(served.url, data).json()
    assert plain["token_type"] == "Bearer" and "cnf" not in claims_of(plain["access_token"])
    key = DeviceKey()
    bound = post(served.url, data, key.proof("POST", TOKEN_ENDPOINT)).json()
    assert bound["token_type"] == "DPoP"
    assert claims_of(bound["access_token"])["cnf"] == {"jkt": key.jkt}


def test_token_endpoint_urls_accept_another_address(dev_vault: DevVault, origin_creds):
    """A phone on the LAN reaches the stack at another address: listed there, proofs for it
    are accepted; anything else is not."""
    from tests.vault.conftest import build_app, identity_settings, identity_stack

    lan = "http://192.168.1.20:8787/oauth/token"
    sc, ic = identity_stack(
        dev_vault.addr, origin_creds, identity_settings(token_endpoint_urls=[lan])
    )
    with ServedApp(build_app(sc, ic)) as srv:
        key = DeviceKey()
        assert (
            post(srv.url, registration(dev_vault.boot), key.proof("POST", lan)).status_code == 200
        )
        wrong = key.proof("POST", "http://192.168.1.21:8787/oauth/token")
        assert post(srv.url, registration(dev_vault.boot), wrong).status_code == 400
