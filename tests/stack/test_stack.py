"""`outpost up` end to end: the README's walkthrough against the real running stack."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ROOT, start_stack


def _post(url: str, token: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_walkthrough_token_embeddings_cache_hit_classification_and_oip(
    running_stack: dict[str, Any],
) -> None:
    edge = running_stack["edge"]["url"]
    token = subprocess.run(
        [
            sys.executable,
            "-m",
            "outpost",
            "token",
            "--state-file",
            str(Path(running_stack["handle"].state_dir) / "stack.json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=True,
    ).stdout.strip()
    assert token.count(".") == 2

    body = {"model": "minilm", "input": "a sentence only the stack test sends"}
    first = _post(f"{edge}/v1/embeddings", token, body)
    second = _post(f"{edge}/v1/embeddings", token, body)
    assert first.status_code == second.status_code == 200
    assert first.headers["x-cache"] == "MISS" and second.headers["x-cache"] == "HIT"
    assert first.headers["x-model-name"] == "minilm" and first.headers["x-model-version"] == "1"
    assert len(first.json()["data"][0]["embedding"]) == 384
    assert first.json()["data"] == second.json()["data"]

    cls = _post(
        f"{edge}/v1/classifications",
        token,
        {"model": "support-intent", "input": "I was charged twice for my subscription"},
    )
    assert cls.status_code == 200
    assert cls.json()["data"][0]["labels"][0]["label"] == "billing"

    oip = _post(
        f"{edge}/v2/models/iris/infer",
        token,
        {
            "inputs": [
                {
                    "name": "float_input",
                    "shape": [1, 4],
                    "datatype": "FP32",
                    "data": [5.1, 3.5, 1.4, 0.2],
                }
            ]
        },
    )
    assert oip.status_code == 200
    label = next(o for o in oip.json()["outputs"] if o["name"] == "label")
    assert label["data"] == [0]  # setosa


def test_requests_without_a_token_are_refused_at_the_edge(running_stack: dict[str, Any]) -> None:
    resp = httpx.post(
        f"{running_stack['edge']['url']}/v1/embeddings",
        json={"model": "minilm", "input": "x"},
        timeout=10,
    )
    assert resp.status_code == 401
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert "WWW-Authenticate" in resp.headers


def test_stack_log_is_prefixed_per_component_and_holds_no_secret(
    running_stack: dict[str, Any],
) -> None:
    running_stack["token"]()  # make sure the issuer has been used at least once
    log = Path(running_stack["log"]).read_text()
    for component in ("origin-1 |", "origin-2 |", "edge", "vault"):
        assert component in log
    creds = json.loads(Path(running_stack["demo_credentials_file"]).read_text())
    approle = json.loads(
        (Path(running_stack["handle"].state_dir) / "vault" / "origin-approle.json").read_text()
    )
    for secret in (creds["client_secret"], creds["api_key"], approle["secret_id"]):
        assert secret not in log


def _assert_all_stopped(state: dict[str, Any], how: str) -> None:
    urls = [o["url"] for o in state["origins"]] + [state["edge"]["url"], state["vault"]["addr"]]
    for url in urls:
        try:
            httpx.get(url, timeout=1)
            raise AssertionError(f"{url} still answers after {how}")
        except httpx.ConnectError:
            pass


def test_ctrl_c_or_sigterm_stop_everything_and_a_restart_reuses_vault_state(
    tmp_path: Path,
) -> None:
    first = start_stack(tmp_path)
    token_before = first.token()
    creds_before = (tmp_path / "vault" / "demo-credentials.json").read_text()
    assert first.stop() == 0
    assert not (tmp_path / "stack.json").exists()
    _assert_all_stopped(first.state, "Ctrl-C")

    second = start_stack(tmp_path, ports=first.ports)
    try:
        # Same Vault data: the demo credentials survive, and old tokens still verify at the edge.
        assert (tmp_path / "vault" / "demo-credentials.json").read_text() == creds_before
        resp = _post(
            f"{second.state['edge']['url']}/v1/embeddings",
            token_before,
            {"model": "minilm", "input": "still valid after restart"},
        )
        assert resp.status_code == 200, resp.text
        assert "bootstrap created" not in second.log.read_text().split("Outpost is up")[-1]
    finally:
        # A service manager's SIGTERM stops every component too (none is orphaned).
        assert second.stop(sig=signal.SIGTERM) == 0
    _assert_all_stopped(second.state, "SIGTERM")
