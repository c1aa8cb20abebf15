"""`outpost vault status` notices what drifts from the bootstrap: a policy edited by hand, a
rotated signing key, a lost secret, a server that is down (a real persistent OpenBao)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import free_port
from vault.bootstrap import ORIGIN_KV_PREFIX, TRANSIT_KEY, admin_client, bootstrap_local
from vault.server import ORIGIN_POLICY, POLICY_DIR, ensure_state, start_local_vault
from vault.status import outpost_status


def _by_name(addr: str, state: Path) -> dict[str, tuple[bool, str]]:
    return {c.name: (c.ok, c.detail) for c in outpost_status(addr, state)}


def test_status_follows_drift_and_a_rotation(tmp_path: Path) -> None:
    proc = start_local_vault(tmp_path, free_port())
    try:
        bootstrap_local(tmp_path, proc.addr)
        fresh = _by_name(proc.addr, tmp_path)
        assert all(ok for ok, _ in fresh.values()), fresh
        assert "version 1 " in fresh[f"transit key {TRANSIT_KEY}"][1]

        admin = admin_client(proc.addr, ensure_state(tmp_path))
        admin.secrets.transit.rotate_key(TRANSIT_KEY)
        edited = (
            POLICY_DIR / "origin.hcl"
        ).read_text() + '\npath "secret/data/*" {\n  capabilities = ["read"]\n}\n'
        admin.sys.create_or_update_acl_policy(ORIGIN_POLICY, edited)
        admin.secrets.kv.v2.delete_metadata_and_all_versions(
            f"{ORIGIN_KV_PREFIX}/refresh", mount_point="secret"
        )

        drifted = _by_name(proc.addr, tmp_path)
        ok, detail = drifted[f"transit key {TRANSIT_KEY}"]
        assert ok and "version 2 " in detail and "last rotation" in detail
        assert drifted[f"policy {ORIGIN_POLICY}"] == (
            False,
            "differs from vault/policies/origin.hcl (run `outpost vault bootstrap`)",
        )
        assert drifted[f"kv {ORIGIN_KV_PREFIX}/"][0] is False
        assert "refresh" in drifted[f"kv {ORIGIN_KV_PREFIX}/"][1]
        assert drifted["policy outpost-admin"][0] is True

        bootstrap_local(tmp_path, proc.addr)  # what the hint says to run
        assert all(ok for ok, _ in _by_name(proc.addr, tmp_path).values())
    finally:
        proc.stop()


@pytest.mark.parametrize("what", ["server down", "no admin credentials"])
def test_status_says_what_is_missing_in_one_line(tmp_path: Path, what: str) -> None:
    if what == "server down":
        checks = outpost_status(f"http://127.0.0.1:{free_port()}", tmp_path, timeout=1)
        assert [(c.name, c.ok) for c in checks] == [("server", False)]
        assert "unreachable" in checks[0].detail
        return
    proc = start_local_vault(tmp_path / "vault", free_port())
    try:
        checks = outpost_status(proc.addr, tmp_path / "elsewhere")
    finally:
        proc.stop()
    assert [(c.name, c.ok) for c in checks] == [("server", True), ("admin login", False)]
    assert "admin-secret-id missing" in checks[1].detail
