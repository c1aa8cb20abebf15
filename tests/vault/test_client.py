"""AppRole login, renewal at 2/3 of the TTL, re-login after expiry or max TTL, wrapped secret_id."""

from __future__ import annotations

import json
import time

import pytest

from origin.secrets.client import CredentialsError, VaultClient, load_credentials
from tests.vault.conftest import DevVault, make_short_role, vault_settings
from vault.bootstrap import wrapped_origin_secret_id


def _sleep_until(deadline: float) -> None:
    time.sleep(max(0.0, deadline - time.monotonic()))


def test_login_reads_own_secrets(dev_vault: DevVault, origin_creds):
    client = VaultClient(vault_settings(dev_vault.addr), origin_creds)
    token = client.login()
    assert token.ttl > 0 and token.renewable
    data, version = client.read_kv("outpost/origin/hmac")
    assert "key" in data and version >= 1


def test_token_is_renewed_after_two_thirds_of_ttl(dev_vault: DevVault):
    creds = make_short_role(dev_vault.root, "outpost-origin-renew", "3s", "60s")
    client = VaultClient(vault_settings(dev_vault.addr), creds)
    first = client.login()
    assert client.ensure_token() is first  # before the renewal point: nothing to do
    _sleep_until(first.renew_at + 0.05)
    renewed = client.ensure_token()
    assert renewed.accessor == first.accessor  # same token, extended
    assert renewed.renewals == 1 and renewed.logins == 1
    assert renewed.expires_at > first.expires_at


def test_expired_token_triggers_a_fresh_login(dev_vault: DevVault):
    creds = make_short_role(dev_vault.root, "outpost-origin-expire", "2s", "60s")
    client = VaultClient(vault_settings(dev_vault.addr), creds)
    first = client.login()
    time.sleep(2.5)  # let it expire on the server without renewing
    assert client.read_kv("outpost/origin/hmac") is not None
    assert client.token is not None
    assert client.token.accessor != first.accessor and client.token.logins == 2


def test_revoked_token_is_replaced_on_forbidden(dev_vault: DevVault, origin_creds):
    client = VaultClient(vault_settings(dev_vault.addr), origin_creds)
    first = client.login()
    dev_vault.root.auth.token.revoke_accessor(first.accessor)
    assert client.read_kv("outpost/origin/hmac") is not None
    assert client.token is not None and client.token.accessor != first.accessor


def test_token_at_max_ttl_is_replaced_by_login(dev_vault: DevVault):
    creds = make_short_role(dev_vault.root, "outpost-origin-maxttl", "3s", "3s")
    client = VaultClient(vault_settings(dev_vault.addr), creds)
    first = client.login()
    _sleep_until(first.renew_at + 0.05)
    after = client.ensure_token()  # renewal cannot extend past max TTL: log in instead
    assert after.accessor != first.accessor and after.logins == 2


def test_wrapped_secret_id_is_unwrapped_once(dev_vault: DevVault, tmp_path):
    wrapping_token = wrapped_origin_secret_id(dev_vault.root, "1m")
    approle = tmp_path / "approle.json"
    approle.write_text(
        json.dumps({"role_id": dev_vault.boot.role_id, "wrapped_secret_id": wrapping_token})
    )
    settings = vault_settings(dev_vault.addr, approle_file=approle)
    client = VaultClient(settings, load_credentials(settings))
    client.login()
    assert client.read_kv("outpost/origin/hmac") is not None
    # The wrapping token is single-use: a second consumer (an interceptor) fails.
    other = VaultClient(settings, load_credentials(settings))
    with pytest.raises(Exception) as exc_info:
        other.login()
    assert wrapping_token not in str(exc_info.value)


def test_missing_credentials_are_a_clear_error(tmp_path, dev_vault: DevVault):
    with pytest.raises(CredentialsError, match="no AppRole credentials"):
        load_credentials(vault_settings(dev_vault.addr))
    with pytest.raises(CredentialsError, match="cannot read"):
        load_credentials(vault_settings(dev_vault.addr, role_id_file=tmp_path / "missing"))
