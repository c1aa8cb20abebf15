"""Secrets (client secrets, API keys, AppRole secret_id, the caller key, tokens) never show up
in logs, error bodies, metrics, `stack.json` or `outpost config show`, on a real `outpost up`
stack (OpenBao, two origins, the edge); and a replayed refresh token revokes its whole
family."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from outpost import devicekey
from outpost.devicekey import DeviceKey
from tests.conftest import ROOT
from vault import caller_key
from vault.bootstrap import admin_client
from vault.server import StatePaths

DEVICE_GRANT = "urn:outpost:params:oauth:grant-type:device-registration"


@pytest.fixture(scope="module")
def secrets(running_stack: dict[str, Any]) -> dict[str, str]:
    creds = json.loads(Path(running_stack["demo_credentials_file"]).read_text())
    approle = json.loads(
        (Path(running_stack["handle"].state_dir) / "vault" / "origin-approle.json").read_text()
    )
    vault_state = Path(running_stack["handle"].state_dir) / "vault"
    admin = admin_client(running_stack["vault"]["addr"], StatePaths(vault_state))
    return {
        "client_secret": creds["client_secret"],
        "api_key": creds["api_key"],
        "secret_id": approle["secret_id"],
        # the key the edge signs its caller proofs with (the edge got it in its environment)
        "caller_key": caller_key.current_setting(admin).partition(":")[2],
    }


def token_url(stack: dict[str, Any]) -> str:
    return stack["edge"]["url"] + "/oauth/token"


def register_device(stack: dict[str, Any], api_key: str, key: DeviceKey) -> dict[str, Any]:
    with httpx.Client(timeout=15) as client:
        resp = devicekey.register(client, token_url(stack), api_key, key)
    assert resp.status_code == 200, resp.text
    return resp.json()


def refresh(stack: dict[str, Any], token: str, key: DeviceKey) -> httpx.Response:
    with httpx.Client(timeout=15) as client:
        return devicekey.refresh(client, token_url(stack), token, key)


def test_replayed_refresh_token_is_refused_and_revokes_the_family(
    running_stack: dict[str, Any], secrets: dict[str, str]
) -> None:
    key = DeviceKey()
    first = register_device(running_stack, secrets["api_key"], key)["refresh_token"]
    rotated = refresh(running_stack, first, key)
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["refresh_token"]
    replay = refresh(running_stack, first, key)
    assert replay.status_code in {400, 401}, replay.text
    assert replay.json().get("error") == "invalid_grant"
    assert first not in replay.text
    # the family is revoked: the legitimately rotated token no longer works either
    after = refresh(running_stack, second, key)
    assert after.status_code in {400, 401}, after.text
    assert second not in after.text


def provoke_errors(stack: dict[str, Any], secrets: dict[str, str]) -> list[httpx.Response]:
    """Wrong credentials that *contain* real secrets in the wrong places, sent every way."""
    creds = json.loads(Path(stack["demo_credentials_file"]).read_text())
    url = token_url(stack)
    edge = stack["edge"]["url"]
    out = [
        httpx.post(
            url,
            data={"grant_type": "client_credentials"},
            auth=(creds["client_id"], secrets["client_secret"] + "x"),
            timeout=15,
        ),
        httpx.post(
            url,
            data={"grant_type": "client_credentials", "client_id": secrets["api_key"]},
            timeout=15,
        ),
        httpx.post(
            url, data={"grant_type": DEVICE_GRANT, "api_key": secrets["secret_id"]}, timeout=15
        ),
        httpx.post(
            url,
            data={"grant_type": "refresh_token", "refresh_token": secrets["client_secret"]},
            timeout=15,
        ),
        httpx.post(url, data={"grant_type": secrets["api_key"]}, timeout=15),
        httpx.post(
            edge + "/v1/embeddings",
            json={"model": "nope", "input": secrets["client_secret"]},
            headers={"authorization": "Bearer " + stack["token"]()},
            timeout=15,
        ),
        httpx.post(
            edge + "/v1/embeddings",
            json={"model": "x"},
            headers={"authorization": f"Bearer {secrets['client_secret']}"},
            timeout=15,
        ),
    ]
    for resp in out:
        assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)
    return out


def test_secrets_never_appear_in_error_bodies_metrics_or_logs(
    running_stack: dict[str, Any], secrets: dict[str, str]
) -> None:
    responses = provoke_errors(running_stack, secrets)
    token = running_stack["token"]()
    texts = {f"response {i}": r.text + json.dumps(dict(r.headers)) for i, r in enumerate(responses)}
    admin = running_stack["edge"]["admin_url"]  # the internal listener
    texts["edge /metrics"] = httpx.get(admin + "/metrics", timeout=10).text
    texts["edge /healthz"] = httpx.get(admin + "/healthz", timeout=10).text
    for o in running_stack["origins"]:  # on their internal listeners: no caller proof needed
        metrics = httpx.get(o["admin_url"] + "/metrics", timeout=10)
        health = httpx.get(o["admin_url"] + "/healthz", timeout=10)
        assert metrics.status_code == 200 and health.status_code in (200, 503)
        texts[f"origin {o['url']} /metrics"] = metrics.text
        texts[f"origin {o['url']} /healthz"] = health.text
    state_file = Path(running_stack["handle"].state_dir) / "stack.json"
    texts["stack.json"] = state_file.read_text()
    texts["log"] = Path(running_stack["log"]).read_text(errors="replace")
    for where, text in texts.items():
        for name, value in {**secrets, "access_token": token}.items():
            if name == "access_token" and where.startswith("response"):
                continue  # responses were sent before this token existed
            assert value not in text, f"{name} leaked into {where}"
    assert "Traceback" not in texts["log"]


def test_effective_config_output_redacts_every_secret(
    running_stack: dict[str, Any], secrets: dict[str, str]
) -> None:
    state_dir = Path(running_stack["handle"].state_dir)
    env = {
        **os.environ,
        "OUTPOST_STACK_STATE_DIR": str(state_dir),
        "OUTPOST_VAULT_ADDR": running_stack["vault"]["addr"],
        "OUTPOST_VAULT_APPROLE_FILE": str(state_dir / "vault" / "origin-approle.json"),
        # secrets handed over the wrong way (env) must be redacted too
        "OUTPOST_VAULT_SECRET_ID": secrets["secret_id"],
        "OUTPOST_VAULT_TOKEN": secrets["client_secret"],
        "OUTPOST_EDGE_API_KEY": secrets["api_key"],
    }
    # The running stack's recorded configuration, then env + defaults (`--env`), where the
    # secrets above are set.
    for mode in ([], ["--env"]):
        result = subprocess.run(
            [sys.executable, "-m", "outpost", "config", "show", "all", *mode],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        output = result.stdout + result.stderr
        assert output.strip()
        for name, value in secrets.items():
            assert value not in output, f"{name} appears in `outpost config show {mode}`"
