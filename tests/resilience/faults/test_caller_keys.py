"""The caller key's life on real processes: rotated in Vault (vault/caller_key.py) while edges
keep serving, old and new keys accepted during the overlap and only the new one afterwards; and
Vault down, where the origin keeps checking proofs with its last good copy of the key."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import hvac
import pytest

from tests.conftest import free_port
from tests.resilience.conftest import (
    EMB,
    DevVault,
    Issuer,
    edge_settings,
    make_repo,
    proof_headers,
    proven_origin,
    start_edge,
)
from vault import caller_key
from vault.bootstrap import bootstrap
from vault.server import ensure_state, start_dev_vault


@pytest.fixture
def own_vault(tmp_path: Path) -> Iterator[DevVault]:
    """A dev OpenBao of this test's own (the test rotates its key, or stops it)."""
    token = secrets.token_hex(16)
    proc = start_dev_vault(free_port(), token, tmp_path / "bao.log")
    try:
        root = hvac.Client(url=proc.addr, token=token, timeout=5)
        yield DevVault(
            proc, root, bootstrap(root, paths=ensure_state(tmp_path / "vault")), tmp_path / "vault"
        )
    finally:
        proc.stop()


def wait_for(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def key_of(setting: str) -> tuple[str, bytes]:
    import base64

    kid, _, encoded = setting.partition(":")
    return kid, base64.b64decode(encoded)


def embed(url: str, headers: dict[str, str]) -> int:
    """A fresh input each time: through an edge, a cached answer would prove nothing."""
    body = {"model": EMB, "input": f"rotate me {time.monotonic_ns()}"}
    return httpx.post(url + "/v1/embeddings", json=body, headers=headers, timeout=15).status_code


def test_a_rotation_keeps_every_edge_serving(
    own_vault: DevVault, tiny_src: Path, issuer: Issuer, tmp_path: Path
) -> None:
    origin = proven_origin(own_vault, make_repo(tiny_src, tmp_path / "models"), tmp_path / "o.log")
    old = caller_key.ensure(own_vault.root, [])
    edges = [start_edge(edge_settings(issuer, [origin.url], caller_key=old), tmp_path)]
    auth = {"authorization": f"Bearer {issuer.token('ed-1')}"}
    try:
        assert embed(edges[0].url, auth) == 200

        def accepted(setting: str) -> bool:
            return (
                embed(origin.url, proof_headers(key_of(setting), "POST", "/v1/embeddings")) == 200
            )

        new = caller_key.rotate(own_vault.root)
        assert new != old and caller_key.ensure(own_vault.root, []) == new
        wait_for(lambda: accepted(new), "the origin to pick up the new key")
        # Overlap: the edge still signing with the old key and one given the new key both work.
        edges.append(start_edge(edge_settings(issuer, [origin.url], caller_key=new), tmp_path))
        assert [embed(e.url, auth) for e in edges] == [200, 200]
        assert accepted(old)

        assert caller_key.retire_previous(own_vault.root) is True
        wait_for(lambda: not accepted(old), "the origin to drop the old key")
        assert accepted(new)
        assert [embed(e.url, auth) for e in edges] == [502, 200]  # the forgotten edge: 502
        assert caller_key.retire_previous(own_vault.root) is False
    finally:
        for edge in edges:
            edge.stop()
        origin.stop()


def test_vault_down_keeps_the_last_key(
    own_vault: DevVault, tiny_src: Path, issuer: Issuer, tmp_path: Path
) -> None:
    origin = proven_origin(own_vault, make_repo(tiny_src, tmp_path / "models"), tmp_path / "o.log")
    setting = caller_key.ensure(own_vault.root, [])
    edge = start_edge(edge_settings(issuer, [origin.url], caller_key=setting), tmp_path)
    auth = {"authorization": f"Bearer {issuer.token('ed-1')}"}
    admin = origin.admin_url  # type: ignore[attr-defined]
    try:
        assert embed(edge.url, auth) == 200
        own_vault.proc.stop()

        def degraded() -> bool:
            health = httpx.get(admin + "/healthz", timeout=5).json()
            return any("vault unreachable" in reason for reason in health["degraded"])

        wait_for(degraded, "the origin to find Vault down")
        assert [embed(edge.url, auth) for _ in range(5)] == [200] * 5
        proven = proof_headers(key_of(setting), "POST", "/v1/embeddings")
        assert embed(origin.url, proven) == 200
        assert embed(origin.url, {}) == 401
        assert httpx.get(origin.url + "/v2/health/ready", timeout=5).status_code == 200
    finally:
        edge.stop()
        origin.stop()
