"""Vault down and back under load, on a real `outpost up` stack: inference through the edge
never fails while OpenBao is frozen (secrets are held in memory, tokens verified from JWKS),
token issuing degrades to a clear problem rather than a 500, and everything works once Vault
is back."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import StackHandle, start_stack
from tests.resilience.faults.load import Load

MODEL = "minilm"


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackHandle]:
    handle = start_stack(tmp_path_factory.mktemp("vault-outage-stack"))
    yield handle
    handle.stop()


def vault_process(handle: StackHandle) -> psutil.Process:
    """The stack's OpenBao server: the child process listening on the stack's Vault port."""
    port = handle.ports[0]
    for child in psutil.Process(handle.process.pid).children(recursive=True):
        try:
            conns = child.net_connections(kind="tcp")
        except psutil.Error:
            continue
        if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in conns):
            return child
    raise AssertionError("no OpenBao process found in the stack")


def embeddings_model(edge: str, token: str) -> str:
    data = httpx.get(
        edge + "/v1/models", headers={"authorization": f"Bearer {token}"}, timeout=10
    ).json()["data"]
    return next(m["name"] for m in data if m["task"] == "embeddings" and m["served_version"])


def test_frozen_vault_does_not_fail_inference(own_stack: StackHandle) -> None:
    edge = own_stack.state["edge"]["url"]
    token = own_stack.token()
    model = embeddings_model(edge, token)
    auth = {"authorization": f"Bearer {token}"}

    def send(client: httpx.Client, n: int) -> httpx.Response:
        body = {"model": model, "input": f"vault outage {n % 40}"}
        headers = {**auth, "cache-control": "no-cache"} if n % 2 else auth
        return client.post(edge + "/v1/embeddings", json=body, headers=headers)

    vault = vault_process(own_stack)
    with Load(send, workers=2, pace=0.15) as load:  # under the stack's 20/s limit
        load.wait_for(10)
        vault.send_signal(signal.SIGSTOP)
        try:
            load.wait_for(20, timeout=60)
            during = httpx.post(
                edge + "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=("nobody", "wrong"),
                timeout=30,
            )
            assert during.status_code != 500 and during.status_code < 600
            time.sleep(3)  # longer than the secrets client's Vault timeout
            load.wait_for(10, timeout=60)
        finally:
            vault.send_signal(signal.SIGCONT)
        load.wait_for(10, timeout=60)
    assert load.failures == [], load.failures[:5]
    # back: new tokens are issued again (bounded wait for the signer to reconnect)
    deadline = time.monotonic() + 30
    while True:
        try:
            fresh = own_stack.token()
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    resp = httpx.post(
        edge + "/v1/embeddings",
        json={"model": model, "input": "after"},
        headers={"authorization": f"Bearer {fresh}"},
        timeout=30,
    )
    assert resp.status_code == 200
    log = Path(own_stack.log).read_text(errors="replace")
    assert "Traceback" not in log
