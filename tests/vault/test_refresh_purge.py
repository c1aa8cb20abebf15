"""Vault's storage follows the live devices: expired refresh-token families are deleted (every
version and the metadata) by the background purge, reused ones at once, and the records written
before device keys existed (unusable now) as well. Real OpenBao, real uvicorn."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import httpx
import hvac
import pytest

from outpost import devicekey
from outpost.devicekey import DeviceKey
from tests.vault.conftest import (
    TOKEN_ENDPOINT,
    DevVault,
    ServedApp,
    build_app,
    identity_settings,
    identity_stack,
)

ROOT = "outpost/origin-state/refresh"


def families(root: hvac.Client) -> set[str]:
    """Every family record in Vault (KV metadata), shard folders walked."""
    kv = root.secrets.kv.v2
    try:
        top = kv.list_secrets(ROOT)["data"]["keys"]
    except hvac.exceptions.InvalidPath:
        return set()
    found = set()
    for name in top:
        if not name.endswith("/"):
            found.add(name)
            continue
        with contextlib.suppress(hvac.exceptions.InvalidPath):  # a shard emptied just now
            found |= set(kv.list_secrets(f"{ROOT}/{name}")["data"]["keys"])
    return found


@pytest.fixture
def issuer(dev_vault: DevVault, origin_creds) -> Iterator[ServedApp]:
    settings = identity_settings(refresh_token_ttl=3600, purge_interval=3600)
    sc, ic = identity_stack(dev_vault.addr, origin_creds, settings)
    with ServedApp(build_app(sc, ic)) as srv:
        srv.identity = ic  # type: ignore[attr-defined]
        yield srv


def register(url: str, boot, key: DeviceKey) -> dict:
    with httpx.Client(timeout=10) as client:
        resp = devicekey.register(
            client, f"{url}/oauth/token", boot.demo_api_key, key, htu=TOKEN_ENDPOINT
        )
    assert resp.status_code == 200, resp.text
    return resp.json()


def refresh(url: str, token: str, key: DeviceKey) -> httpx.Response:
    with httpx.Client(timeout=10) as client:
        return devicekey.refresh(client, f"{url}/oauth/token", token, key, htu=TOKEN_ENDPOINT)


def family_of(token: str) -> str:
    return token.split(".")[1]


def test_expired_families_are_deleted_and_live_ones_kept(issuer: ServedApp, dev_vault: DevVault):
    keys = [DeviceKey() for _ in range(4)]
    tokens = [register(issuer.url, dev_vault.boot, k)["refresh_token"] for k in keys]
    mine = {family_of(t) for t in tokens}
    assert mine <= families(dev_vault.root)
    purger = issuer.identity.purger  # type: ignore[attr-defined]
    purger.sweep()  # nothing is expired yet
    assert mine <= families(dev_vault.root)
    assert refresh(issuer.url, tokens[0], keys[0]).status_code == 200
    # Two hours later (the TTL is one hour) every one of them is gone, versions and all.
    purger.sweep(now=time.time() + 7200)
    assert not (mine & families(dev_vault.root))
    gone = refresh(issuer.url, tokens[1], keys[1])
    assert gone.status_code == 400 and gone.json()["error"] == "invalid_grant"
    path = f"{ROOT}/{tokens[1].split('.')[1][0]}/{family_of(tokens[1])}"
    with pytest.raises(hvac.exceptions.InvalidPath):
        dev_vault.root.secrets.kv.v2.read_secret_metadata(path)


def test_a_reused_family_is_deleted_at_once(issuer: ServedApp, dev_vault: DevVault):
    key = DeviceKey()
    first = register(issuer.url, dev_vault.boot, key)["refresh_token"]
    assert refresh(issuer.url, first, key).status_code == 200
    assert family_of(first) in families(dev_vault.root)
    assert refresh(issuer.url, first, key).json()["error"] == "invalid_grant"  # reuse
    assert family_of(first) not in families(dev_vault.root)


def test_records_from_before_device_keys_are_purged(issuer: ServedApp, dev_vault: DevVault):
    legacy = f"{ROOT}/legacyFamily0001"
    dev_vault.root.secrets.kv.v2.create_or_update_secret(
        legacy, secret={"sub": "device:demo-app:old", "generation": 1, "expires_at": 2**40}
    )
    issuer.identity.purger.sweep()  # type: ignore[attr-defined]
    assert "legacyFamily0001" not in families(dev_vault.root)


def test_the_background_job_purges_and_counts(dev_vault: DevVault, origin_creds):
    for i in range(3):
        dev_vault.root.secrets.kv.v2.create_or_update_secret(
            f"{ROOT}/legacyJob{i}", secret={"generation": 1}
        )
    settings = identity_settings(purge_interval=0.05)
    sc, ic = identity_stack(dev_vault.addr, origin_creds, settings)
    with ServedApp(build_app(sc, ic)) as srv:
        deadline = time.monotonic() + 30
        while {f"legacyJob{i}" for i in range(3)} & families(dev_vault.root):
            assert time.monotonic() < deadline, "the purge job never reached the legacy shard"
            time.sleep(0.2)
        metrics = httpx.get(f"{srv.url}/metrics").text
    purged = [
        line
        for line in metrics.splitlines()
        if line.startswith("outpost_refresh_families_purged_total ")
    ]
    assert purged and float(purged[0].split()[1]) >= 3
