"""App attestation at registration, per app: Firebase App Check tokens (Google's endpoint is the
one FAKE here, tests/fake_appcheck.py) and the local attestation issuer, against real OpenBao and
the issuer served by uvicorn. In enforce mode missing, forged, expired and wrong-app tokens are
refused; in monitor mode they are counted and allowed."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from outpost import devicekey
from outpost.apps import AppSpec, create_app
from outpost.devicekey import DeviceKey
from tests.conftest import free_port
from tests.fake_appcheck import ANDROID_APP, IOS_APP, PROJECT_NUMBER, FakeAppCheck
from tests.vault.conftest import (
    TOKEN_ENDPOINT,
    DevVault,
    ServedApp,
    build_app,
    identity_settings,
    identity_stack,
)

DOWN_ISSUER = "https://attest.example"


@pytest.fixture(scope="module")
def google() -> Iterator[FakeAppCheck]:
    with FakeAppCheck() as fake:
        yield fake


@pytest.fixture(scope="module")
def apps(dev_vault: DevVault) -> dict[str, str]:
    """API keys of apps with each attestation setting (created as `outpost apps create` does)."""
    specs = {
        "att-enforce": AppSpec(
            "att-enforce", attestation="enforce", attested_app_ids=(ANDROID_APP, IOS_APP)
        ),
        "att-monitor": AppSpec(
            "att-monitor", attestation="monitor", attested_app_ids=(ANDROID_APP,)
        ),
        "att-local": AppSpec("att-local", attestation="enforce"),  # accepts its own name
        "att-down": AppSpec("att-down", attestation="enforce", attested_app_ids=(ANDROID_APP,)),
    }
    return {name: create_app(dev_vault.root, spec, rotate=True) for name, spec in specs.items()}


@pytest.fixture(scope="module")
def issuer(
    dev_vault: DevVault, origin_creds, google: FakeAppCheck, apps: dict[str, str]
) -> Iterator[ServedApp]:
    settings = identity_settings(
        firebase_project_number=PROJECT_NUMBER,
        firebase_jwks_url=google.url,
        local_attestation=True,
        attestation_issuers=[
            {
                "issuer": DOWN_ISSUER,
                "jwks_url": f"http://127.0.0.1:{free_port()}/jwks",  # nothing listens
                "audiences": [f"projects/{PROJECT_NUMBER}"],
            }
        ],
    )
    sc, ic = identity_stack(dev_vault.addr, origin_creds, settings)
    with ServedApp(build_app(sc, ic)) as srv:
        yield srv


def register(url: str, api_key: str, attestation: str | None) -> httpx.Response:
    with httpx.Client(timeout=10) as client:
        return devicekey.register(
            client,
            f"{url}/oauth/token",
            api_key,
            DeviceKey(),
            htu=TOKEN_ENDPOINT,
            attestation=attestation,
        )


def refused(resp: httpx.Response, why: str) -> bool:
    body = resp.json()
    return (
        resp.status_code == 401
        and body["error"] == "invalid_attestation"
        and why in body["error_description"]
    )


def test_enforce_accepts_a_valid_app_check_token(issuer, apps, google):
    resp = register(issuer.url, apps["att-enforce"], google.token(IOS_APP))
    assert resp.status_code == 200, resp.text


def test_enforce_refuses_what_fails(issuer, apps, google):
    key = apps["att-enforce"]
    thief = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = {
        "missing": None,
        "bad_signature": google.token(key=thief),  # forged, with the real kid
        "unknown_key": google.token(key=thief, kid="made-up"),
        "expired": google.token(expires_in=-3600),
        "wrong_app": google.token("1:123456789012:android:ffffffffffff"),
        "unknown_issuer": google.token(project_number="999"),  # another Firebase project
        "malformed": "eyJ.not-a-token.x",
    }
    for why, token in cases.items():
        assert refused(register(issuer.url, key, token), why), why
    metrics = httpx.get(f"{issuer.url}/metrics").text
    for why in cases:
        assert (
            f'outpost_attestation_checks_total{{app="att-enforce",mode="enforce",result="{why}"}}'
            in metrics
        )


def test_made_up_key_ids_do_not_hammer_google(issuer, apps, google):
    thief = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    before = google.fetches
    for i in range(5):
        register(issuer.url, apps["att-enforce"], google.token(key=thief, kid=f"kid-{i}"))
    assert google.fetches - before <= 1


def test_monitor_counts_and_allows(issuer, apps, google):
    key = apps["att-monitor"]
    assert register(issuer.url, key, None).status_code == 200
    assert register(issuer.url, key, google.token(expires_in=-3600)).status_code == 200
    assert register(issuer.url, key, google.token()).status_code == 200
    metrics = httpx.get(f"{issuer.url}/metrics").text
    for result in ("missing", "expired", "valid"):
        assert (
            f'outpost_attestation_checks_total{{app="att-monitor",mode="monitor",'
            f'result="{result}"}} 1.0' in metrics
        )


def test_the_local_issuer_attests_its_apps(issuer, apps):
    resp = httpx.post(
        f"{issuer.url}/attestation/local/token", data={"api_key": apps["att-local"]}, timeout=10
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"
    token = resp.json()["token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256" and header["kid"].startswith("outpost-attest-v")
    claims = devicekey.decode_unverified(token)
    assert claims["sub"] == "att-local" and claims["iss"] == "http://issuer.test/attestation/local"
    # Its tokens verify with the published keys alone (as the edge checks them).
    jwks = httpx.get(f"{issuer.url}/attestation/local/jwks.json", timeout=5).json()
    pub = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    jwt.decode(token, pub, algorithms=["RS256"], audience="projects/outpost-local")
    assert register(issuer.url, apps["att-local"], token).status_code == 200
    # A token for one app does not register devices of another.
    assert refused(register(issuer.url, apps["att-enforce"], token), "wrong_app")
    wrong = httpx.post(
        f"{issuer.url}/attestation/local/token", data={"api_key": "opk.att-local.nope"}
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"


def test_unreachable_keys_in_enforce_mode_answer_503(issuer, apps, google):
    token = google.token(issuer=DOWN_ISSUER)
    resp = register(issuer.url, apps["att-down"], token)
    assert resp.status_code == 503, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert int(resp.headers["retry-after"]) >= 1
