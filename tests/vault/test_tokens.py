"""OAuth 2.0 token endpoint: grants, RFC 6749 errors, JWKS verification, rotation, refresh reuse."""

from __future__ import annotations

import base64
import time

import httpx
import jwt
import pytest

from outpost import devicekey
from outpost.devicekey import DeviceKey
from tests.vault.conftest import TOKEN_ENDPOINT, DevVault, ServedApp

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def verify(url: str, token: str) -> dict:
    """Verify like the edge does: keys from the JWKS endpoint only."""
    jwks = httpx.get(f"{url}/.well-known/jwks.json", timeout=5).json()
    kid = jwt.get_unverified_header(token)["kid"]
    jwk = next(k for k in jwks["keys"] if k["kid"] == kid)
    key = jwt.PyJWK(jwk).key
    return jwt.decode(
        token, key, algorithms=["EdDSA"], audience="outpost", issuer="http://issuer.test"
    )


def client_credentials(url: str, boot, **extra) -> httpx.Response:
    data = {
        "grant_type": "client_credentials",
        "client_id": "demo-service",
        "client_secret": boot.demo_client_secret,
        **extra,
    }
    return httpx.post(f"{url}/oauth/token", data=data, timeout=10)


def register_device(url: str, boot, key: DeviceKey) -> httpx.Response:
    """Register as a phone would: the app's API key plus a proof from the device's own key."""
    with httpx.Client(timeout=10) as client:
        return devicekey.register(
            client, f"{url}/oauth/token", boot.demo_api_key, key, htu=TOKEN_ENDPOINT
        )


def refresh(url: str, token: str, key: DeviceKey) -> httpx.Response:
    with httpx.Client(timeout=10) as client:
        return devicekey.refresh(client, f"{url}/oauth/token", token, key, htu=TOKEN_ENDPOINT)


def test_client_credentials_token_verifies_via_jwks(served: ServedApp, dev_vault: DevVault):
    resp = client_credentials(served.url, dev_vault.boot)
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"
    body = resp.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert "refresh_token" not in body
    claims = verify(served.url, body["access_token"])
    assert claims["sub"] == "client:demo-service"
    assert claims["scope"] == "inference models:read"
    assert claims["exp"] - claims["iat"] == 900 and claims["nbf"] == claims["iat"]
    assert claims["jti"]
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "EdDSA" and header["kid"].startswith("outpost-jwt-v")


def test_client_secret_basic_and_narrowed_scope(served: ServedApp, dev_vault: DevVault):
    basic = base64.b64encode(f"demo-service:{dev_vault.boot.demo_client_secret}".encode()).decode()
    resp = httpx.post(
        f"{served.url}/oauth/token",
        data={"grant_type": "client_credentials", "scope": "inference"},
        headers={"Authorization": f"Basic {basic}"},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    assert verify(served.url, resp.json()["access_token"])["scope"] == "inference"


@pytest.mark.parametrize(
    ("data", "status", "error"),
    [
        (
            {
                "grant_type": "client_credentials",
                "client_id": "demo-service",
                "client_secret": "wrong",
            },
            401,
            "invalid_client",
        ),
        (
            {"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"},
            401,
            "invalid_client",
        ),
        ({"grant_type": "client_credentials"}, 401, "invalid_client"),
        (
            {"grant_type": "password", "username": "u", "password": "p"},
            400,
            "unsupported_grant_type",
        ),
        ({}, 400, "invalid_request"),
        (
            {"grant_type": "refresh_token", "refresh_token": "ort.abc.1.forged"},
            400,
            "invalid_grant",
        ),
        ({"grant_type": "refresh_token", "refresh_token": "garbage"}, 400, "invalid_grant"),
        (
            {
                "grant_type": "urn:outpost:params:oauth:grant-type:device-registration",
                "api_key": "opk.demo-app.wrong",
            },
            401,
            "invalid_client",
        ),
        (
            {"grant_type": "urn:outpost:params:oauth:grant-type:device-registration"},
            400,
            "invalid_request",
        ),
    ],
)
def test_bad_token_requests_get_rfc6749_errors(served: ServedApp, data, status, error):
    resp = httpx.post(f"{served.url}/oauth/token", data=data, timeout=10)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"] == error
    assert resp.headers["cache-control"] == "no-store"


def test_wrong_content_type_repeated_params_and_bad_scope(served: ServedApp, dev_vault):
    resp = httpx.post(f"{served.url}/oauth/token", json={"grant_type": "client_credentials"})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"
    resp = httpx.post(
        f"{served.url}/oauth/token",
        content=b"grant_type=client_credentials&grant_type=refresh_token",
        headers=FORM,
    )
    assert resp.status_code == 400 and "repeated" in resp.json()["error_description"]
    resp = client_credentials(served.url, dev_vault.boot, scope="admin")
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_scope"
    resp = httpx.post(f"{served.url}/oauth/token", content=b"\xff\xfe", headers=FORM)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"


def test_device_registration_then_refresh_rotation(served: ServedApp, dev_vault: DevVault):
    key = DeviceKey()
    first = register_device(served.url, dev_vault.boot, key)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["device_id"] == key.jkt  # the id is the key's thumbprint, not a claim
    assert body["token_type"] == "DPoP"
    claims = verify(served.url, body["access_token"])
    assert claims["sub"] == f"device:demo-app:{key.jkt}"
    assert claims["cnf"] == {"jkt": key.jkt}
    second = refresh(served.url, body["refresh_token"], key)
    assert second.status_code == 200, second.text
    rotated = second.json()
    assert rotated["refresh_token"] != body["refresh_token"]
    assert verify(served.url, rotated["access_token"])["sub"] == claims["sub"]
    assert verify(served.url, rotated["access_token"])["cnf"] == {"jkt": key.jkt}
    third = refresh(served.url, rotated["refresh_token"], key)
    assert third.status_code == 200, third.text


def test_refresh_token_reuse_revokes_the_family(served: ServedApp, dev_vault: DevVault):
    key = DeviceKey()
    rt1 = register_device(served.url, dev_vault.boot, key).json()["refresh_token"]
    rt2 = refresh(served.url, rt1, key).json()["refresh_token"]
    reused = refresh(served.url, rt1, key)  # a bug (or a thief with the key) replays it
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert "revoked" in reused.json()["error_description"]
    # The legitimate holder's current token dies with the family.
    after = refresh(served.url, rt2, key)
    assert after.status_code == 400 and after.json()["error"] == "invalid_grant"
    # Other families are untouched.
    other_key = DeviceKey()
    other = register_device(served.url, dev_vault.boot, other_key).json()["refresh_token"]
    assert refresh(served.url, other, other_key).status_code == 200


def test_discovery_document(served: ServedApp):
    resp = httpx.get(f"{served.url}/.well-known/openid-configuration", timeout=5)
    doc = resp.json()
    assert doc["issuer"] == "http://issuer.test"
    assert doc["jwks_uri"] == "http://issuer.test/.well-known/jwks.json"
    assert doc["token_endpoint"] == "http://issuer.test/oauth/token"
    assert "client_credentials" in doc["grant_types_supported"]
    assert "refresh_token" in doc["grant_types_supported"]
    assert doc["id_token_signing_alg_values_supported"] == ["EdDSA"]
    jwks = httpx.get(f"{served.url}/.well-known/jwks.json", timeout=5)
    assert jwks.headers["cache-control"] == "public, max-age=300"
    assert all(k["kty"] == "OKP" and k["crv"] == "Ed25519" for k in jwks.json()["keys"])


def test_rotation_old_and_new_key_versions_both_verify(served: ServedApp, dev_vault: DevVault):
    old = client_credentials(served.url, dev_vault.boot).json()["access_token"]
    old_kid = jwt.get_unverified_header(old)["kid"]
    dev_vault.root.secrets.transit.rotate_key("outpost-jwt")
    latest = dev_vault.root.secrets.transit.read_key("outpost-jwt")["data"]["latest_version"]
    new_kid = f"outpost-jwt-v{latest}"
    # No restart: the background JWKS refresh picks the new version up.
    deadline = time.monotonic() + 10
    while True:
        kids = {k["kid"] for k in httpx.get(f"{served.url}/.well-known/jwks.json").json()["keys"]}
        if new_kid in kids:
            break
        assert time.monotonic() < deadline, f"JWKS never showed {new_kid}: {kids}"
        time.sleep(0.1)
    new = client_credentials(served.url, dev_vault.boot).json()["access_token"]
    assert jwt.get_unverified_header(new)["kid"] == new_kid != old_kid
    assert verify(served.url, old)["sub"] == verify(served.url, new)["sub"]
