"""The caller key in real OpenBao: the bootstrap creates it once (a key id and 32 random bytes),
the origin's policy may read it but not change it, and `outpost vault caller-key` rotates it,
retires the previous key and exports the edge's setting to a pipe only."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import hvac
import hvac.exceptions
import pytest

from origin.caller import parse_record
from tests.cli.test_cli import _outpost
from tests.conftest import ROOT
from tests.vault.conftest import DevVault
from vault.bootstrap import bootstrap
from vault.server import ensure_state

PATH = "outpost/origin/caller"


def record(client: hvac.Client) -> dict:
    return client.secrets.kv.v2.read_secret_version(PATH, raise_on_deleted_version=True)["data"][
        "data"
    ]


def test_the_bootstrap_creates_the_key_once(dev_vault: DevVault) -> None:
    first = record(dev_vault.root)
    assert len(base64.b64decode(first["key"], validate=True)) == 32
    assert dev_vault.boot.caller_key == f"{first['kid']}:{first['key']}"
    assert first["key"] not in repr(dev_vault.boot)
    again = bootstrap(dev_vault.root, paths=ensure_state(dev_vault.state_dir))
    assert again.caller_key == dev_vault.boot.caller_key
    assert not any("caller" in item for item in again.created)


def test_the_origin_reads_the_key_and_cannot_change_it(dev_vault: DevVault) -> None:
    origin = hvac.Client(url=dev_vault.addr, timeout=5)
    origin.auth.approle.login(dev_vault.boot.role_id, dev_vault.boot.secret_id)
    assert parse_record(record(origin))  # what the secrets snapshot loads
    with pytest.raises(hvac.exceptions.Forbidden):
        origin.secrets.kv.v2.create_or_update_secret(PATH, secret={"kid": "x", "key": "y"})


def _cli(dev_vault: DevVault, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VAULT_ADDR": dev_vault.addr, "VAULT_TOKEN": dev_vault.root.token}
    return _outpost("vault", "caller-key", *args, env=env)


def test_rotate_retire_and_export_through_the_cli(dev_vault: DevVault) -> None:
    before = record(dev_vault.root)
    rotated = _cli(dev_vault, "rotate")
    assert rotated.returncode == 0, rotated.stderr
    after = record(dev_vault.root)
    assert after["kid"] != before["kid"] and after["key"] != before["key"]
    assert (after["previous_kid"], after["previous_key"]) == (before["kid"], before["key"])
    assert set(parse_record(after)) == {after["kid"], before["kid"]}
    assert after["key"] not in rotated.stdout + rotated.stderr
    assert before["key"] not in rotated.stdout + rotated.stderr

    exported = _cli(dev_vault, "export")  # stdout is a pipe here
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout == f"{after['kid']}:{after['key']}\n"

    retired = _cli(dev_vault, "retire")
    assert retired.returncode == 0 and "retired" in retired.stderr
    assert record(dev_vault.root) == {"kid": after["kid"], "key": after["key"]}
    assert "no previous" in _cli(dev_vault, "retire").stderr
    # The session's other tests sign with the bootstrap's key: put it back.
    dev_vault.root.secrets.kv.v2.create_or_update_secret(PATH, secret=before)


def test_export_refuses_a_terminal(dev_vault: DevVault) -> None:
    """A secret must not land on a screen (or in a terminal's scrollback)."""
    import pty

    leader, follower = pty.openpty()
    env = {**os.environ, "VAULT_ADDR": dev_vault.addr, "VAULT_TOKEN": dev_vault.root.token}
    proc = subprocess.run(
        [sys.executable, "-m", "outpost", "vault", "caller-key", "export"],
        stdout=follower,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
    )
    os.close(follower)
    shown = b""
    try:
        while chunk := os.read(leader, 4096):
            shown += chunk
    except OSError:
        pass
    os.close(leader)
    assert proc.returncode == 1 and "pipe it" in proc.stderr
    assert record(dev_vault.root)["key"].encode() not in shown
