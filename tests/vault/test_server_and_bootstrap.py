"""The persistent local server self-initialises, auto-unseals after a restart, keeps its data, and
the bootstrap is idempotent and keeps secrets out of the config and off world-readable files."""

from __future__ import annotations

import json
import stat

import hvac

from tests.conftest import free_port
from tests.vault.conftest import DevVault
from vault.bootstrap import ORIGIN_ROLE, TRANSIT_KEY, admin_client, bootstrap, bootstrap_local
from vault.server import ensure_state, start_local_vault


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_persistent_server_survives_restart_and_auto_unseals(tmp_path):
    port = free_port()
    proc = start_local_vault(tmp_path, port)
    try:
        first = bootstrap_local(tmp_path, proc.addr)
        paths = ensure_state(tmp_path)
        admin = admin_client(proc.addr, paths)
        key_before = admin.secrets.transit.read_key(TRANSIT_KEY)["data"]["keys"]
    finally:
        proc.stop()

    proc = start_local_vault(tmp_path, port)  # same state dir: no manual unseal, data kept
    try:
        assert hvac.Client(url=proc.addr).sys.read_health_status(method="GET")["sealed"] is False
        again = bootstrap_local(tmp_path, proc.addr)
        assert again.created == []  # nothing had to be recreated
        assert again.role_id == first.role_id and again.secret_id == first.secret_id
        admin = admin_client(proc.addr, paths)
        assert admin.secrets.transit.read_key(TRANSIT_KEY)["data"]["keys"] == key_before
        creds = json.loads(paths.origin_approle.read_text())
        origin = hvac.Client(url=proc.addr)
        origin.auth.approle.login(creds["role_id"], creds["secret_id"])
        assert origin.is_authenticated()
    finally:
        proc.stop()

    for secret_file in (
        paths.seal_key,
        paths.admin_secret_id,
        paths.origin_approle,
        paths.demo_credentials,
    ):
        assert _mode(secret_file) == 0o600, secret_file
    config = paths.config.read_text()
    assert paths.admin_secret_id.read_text().strip() not in config
    assert creds["secret_id"] not in config


def test_bootstrap_is_idempotent(dev_vault: DevVault):
    again = bootstrap(dev_vault.root, paths=ensure_state(dev_vault.state_dir))
    assert again.created == []
    assert again.role_id == dev_vault.boot.role_id
    assert again.secret_id == dev_vault.boot.secret_id
    assert again.demo_api_key == dev_vault.boot.demo_api_key


def test_kv_stores_only_hmacs_of_credentials(dev_vault: DevVault):
    kv = dev_vault.root.secrets.kv.v2
    apps = kv.read_secret_version("outpost/origin/apps", raise_on_deleted_version=True)
    clients = kv.read_secret_version("outpost/origin/clients", raise_on_deleted_version=True)
    stored = json.dumps([apps["data"]["data"], clients["data"]["data"]])
    assert dev_vault.boot.demo_api_key not in stored
    assert dev_vault.boot.demo_client_secret not in stored
    assert "key_hmac" in stored and "secret_hmac" in stored


def test_origin_role_has_no_default_policy(dev_vault: DevVault):
    role = dev_vault.root.auth.approle.read_role(ORIGIN_ROLE)["data"]
    assert role["token_policies"] == ["outpost-origin"]
    assert role["token_no_default_policy"] is True
