"""The origin's AppRole token is refused by the server everywhere except its own paths."""

from __future__ import annotations

import base64

import hvac
import hvac.exceptions
import pytest

from tests.vault.conftest import DevVault


@pytest.fixture(scope="module")
def origin_token(dev_vault: DevVault) -> hvac.Client:
    client = hvac.Client(url=dev_vault.addr, timeout=5)
    client.auth.approle.login(dev_vault.boot.role_id, dev_vault.boot.secret_id)
    return client


def test_origin_can_use_its_own_paths(origin_token: hvac.Client):
    kv = origin_token.secrets.kv.v2
    assert kv.read_secret_version("outpost/origin/hmac", raise_on_deleted_version=True)
    assert "hmac" in kv.list_secrets("outpost/origin")["data"]["keys"]
    assert origin_token.secrets.transit.read_key("outpost-jwt")["data"]["type"] == "ed25519"
    sig = origin_token.secrets.transit.sign_data(
        "outpost-jwt", hash_input=base64.b64encode(b"x").decode()
    )
    assert sig["data"]["signature"].startswith("vault:v")


FORBIDDEN_CALLS = {
    "read another app's KV": lambda c: c.secrets.kv.v2.read_secret_version(
        "outpost/edge/config", raise_on_deleted_version=True
    ),
    "write its own config": lambda c: c.secrets.kv.v2.create_or_update_secret(
        "outpost/origin/hmac", secret={"key": "x"}
    ),
    "list all KV": lambda c: c.secrets.kv.v2.list_secrets(""),
    "rotate the signing key": lambda c: c.secrets.transit.rotate_key("outpost-jwt"),
    "export the signing key": lambda c: c.secrets.transit.export_key("outpost-jwt", "signing-key"),
    "sign with another key": lambda c: c.secrets.transit.sign_data(
        "other-key", hash_input=base64.b64encode(b"x").decode()
    ),
    "read policies": lambda c: c.sys.read_acl_policy("outpost-origin"),
    "mint secret_ids": lambda c: c.auth.approle.generate_secret_id("outpost-origin"),
    "list mounts": lambda c: c.sys.list_mounted_secrets_engines(),
    "create child tokens": lambda c: c.auth.token.create(policies=["outpost-origin"]),
    "use cubbyhole": lambda c: c.adapter.get("/v1/cubbyhole/x"),
}


@pytest.mark.parametrize("what", sorted(FORBIDDEN_CALLS))
def test_origin_token_is_refused_elsewhere(origin_token: hvac.Client, what: str):
    with pytest.raises(hvac.exceptions.Forbidden):
        FORBIDDEN_CALLS[what](origin_token)
