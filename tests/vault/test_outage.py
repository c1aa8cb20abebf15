"""Stop Vault mid-run: verification keeps working, issuing answers 503 + Retry-After, readiness is
degraded (not dead) with a reason, and everything recovers when Vault returns, with no origin
restart. Secret values never show up in logs, error bodies or /metrics."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from origin.identity.component import build_origin_app
from origin.identity.settings import IdentitySettings
from origin.secrets.client import AppRoleCredentials
from origin.secrets.component import SecretsComponent, SecretsStartupError
from origin.settings import OriginSettings
from tests.conftest import free_port
from tests.vault.conftest import ServedApp, vault_settings
from tests.vault.test_tokens import verify
from vault.bootstrap import admin_client, bootstrap_local
from vault.server import ensure_state, start_local_vault


def wait_for(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def issue(url: str, creds: dict) -> httpx.Response:
    data = {
        "grant_type": "client_credentials",
        "client_id": creds["client_id"],
        "client_secret": creds["client_secret"],
    }
    return httpx.post(f"{url}/oauth/token", data=data, timeout=10)


ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
INFER = {
    "inputs": [
        {
            "name": "float_input",
            "shape": [2, 4],
            "datatype": "FP32",
            "data": [x for r in ROWS for x in r],
        }
    ]
}


@pytest.fixture(scope="module")
def iris_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from outpost.modelkit.tiny import build_tiny_tensor

    root = tmp_path_factory.mktemp("vault-models")
    build_tiny_tensor(root / "iris", version=1)
    return root


def infer_ok(url: str) -> bool:
    resp = httpx.post(f"{url}/v2/models/iris/infer", json=INFER, timeout=10)
    return resp.status_code == 200 and resp.headers["x-model-version"] == "1"


def test_vault_outage_degrades_and_recovers(tmp_path, caplog, iris_models):
    """The real origin app with the Vault components, a persistent Vault killed and restarted."""
    caplog.set_level(logging.DEBUG)
    port = free_port()
    vault = start_local_vault(tmp_path / "vault", port)
    paths = ensure_state(tmp_path / "vault")
    try:
        bootstrap_local(paths.root, vault.addr)
        demo = json.loads(paths.demo_credentials.read_text())
        approle = json.loads(paths.origin_approle.read_text())
        app = build_origin_app(
            OriginSettings(models_dir=iris_models, watch=False),
            vault_settings(vault.addr, approle_file=paths.origin_approle, refresh_interval=0.5),
            IdentitySettings(issuer="http://issuer.test", jwks_refresh_interval=0.5),
        )
        bodies: list[str] = []
        with ServedApp(app) as srv:
            wait_for(lambda: infer_ok(srv.url), "model ready")
            before = issue(srv.url, demo)
            assert before.status_code == 200, before.text
            token = before.json()["access_token"]

            vault.kill()  # Vault goes away mid-run

            def degraded() -> list[str]:
                return httpx.get(f"{srv.url}/healthz", timeout=5).json()["degraded"]

            wait_for(lambda: bool(degraded()), "degraded readiness")
            assert any("vault unreachable" in r for r in degraded())
            # Degraded, not dead: the last good copy of the secrets keeps the origin ready.
            assert httpx.get(f"{srv.url}/v2/health/ready", timeout=5).status_code == 200
            assert infer_ok(srv.url)  # inference keeps working
            assert verify(srv.url, token)["sub"] == "client:demo-service"  # JWKS still served
            down = issue(srv.url, demo)
            assert down.status_code == 503
            assert down.headers["content-type"] == "application/problem+json"
            assert int(down.headers["retry-after"]) >= 1
            assert down.json()["type"] == "urn:outpost:problem:token-issuing-unavailable"
            assert down.json()["request_id"]
            bodies += [down.text, httpx.get(f"{srv.url}/healthz").text]

            vault = start_local_vault(paths.root, port)  # same port and data, auto-unseal

            wait_for(lambda: not degraded(), "recovery after the Vault restart")
            after = issue(srv.url, demo)
            assert after.status_code == 200, after.text
            assert verify(srv.url, after.json()["access_token"])["sub"] == "client:demo-service"
            assert infer_ok(srv.url)
            metrics = httpx.get(f"{srv.url}/metrics").text
            assert "outpost_vault_up 1.0" in metrics
            assert 'outpost_tokens_issued_total{grant="client_credentials"}' in metrics
            bodies.append(metrics)
            wrong = {
                "grant_type": "client_credentials",
                "client_id": "demo-service",
                "client_secret": "wrong",
            }
            bodies.append(httpx.post(f"{srv.url}/oauth/token", data=wrong).text)
        admin = admin_client(vault.addr, paths)
        kv = {
            name: admin.secrets.kv.v2.read_secret_version(
                f"outpost/origin/{name}", raise_on_deleted_version=True
            )["data"]["data"]["key"]
            for name in ("hmac", "refresh")
        }
    finally:
        vault.stop()

    seeded = [
        kv["hmac"],
        kv["refresh"],
        demo["api_key"],
        demo["client_secret"],
        approle["secret_id"],
        paths.admin_secret_id.read_text().strip(),
    ]
    haystacks = {
        "logs": caplog.text,
        "bodies": "\n".join(bodies),
        "vault log": paths.log.read_text(errors="replace"),
        "vault audit log": paths.audit_log.read_text(errors="replace"),
    }
    assert "vault unreachable" in caplog.text  # the logs did record the outage
    for where, text in haystacks.items():
        for value in seeded:
            assert value not in text, f"a seeded secret leaked into {where}"


async def test_startup_refuses_when_secrets_never_loaded(tmp_path):
    settings = vault_settings(f"http://127.0.0.1:{free_port()}", startup_timeout=0.5)
    sc = SecretsComponent(settings, credentials=AppRoleCredentials("r", "s"))
    with pytest.raises(SecretsStartupError, match="could not load secrets"):
        await sc.start()
    assert not sc.health()["ready"]


async def test_startup_refuses_without_credentials(tmp_path):
    sc = SecretsComponent(vault_settings("http://127.0.0.1:1"))
    with pytest.raises(SecretsStartupError, match="no AppRole credentials"):
        await sc.start()
