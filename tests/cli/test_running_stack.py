"""The read-only commands ask the running stack: `models list`, `config show`, `vault status`.

A real `outpost up` (OpenBao, two origins, the edge) serves two tiny model versions; the commands
run as a user runs them, from a shell whose environment differs from the stack's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from outpost.modelkit.tiny import build_tiny_embeddings
from tests.cli.test_cli import _outpost as run_outpost
from tests.conftest import start_stack


def _outpost(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_outpost(*args, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def tiny_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("tiny-stack")
    models = root / "models"
    build_tiny_embeddings(models / "minilm", version=1, seed=0)
    build_tiny_embeddings(models / "minilm", version=2, seed=1)
    handle = start_stack(
        root / "state",
        args=("--skip-model-build", "--models-dir", str(models)),
        # A setting of the shell that started the stack: the running edge has it.
        env={"OUTPOST_EDGE_CACHE_MAX_BYTES": "1048576"},
    )
    try:
        state_file = handle.state_dir / "stack.json"
        yield {"state_file": state_file, "models": models, **handle.state}
    finally:
        handle.stop()


def test_models_list_shows_what_each_origin_of_the_running_stack_serves(
    tiny_stack: dict[str, Any],
) -> None:
    result = _outpost("models", "list", "--state-file", str(tiny_stack["state_file"]), "--json")
    assert result.returncode == 0, result.stderr
    assert "models served by the running stack" in result.stderr
    (row,) = json.loads(result.stdout)
    assert row["name"] == "minilm" and row["versions"] == [1, 2] and row["served"] == 2
    assert row["served_by"] == {o["url"]: 2 for o in tiny_stack["origins"]}

    on_disk = _outpost(
        "models",
        *("list", "--disk", "--json", "--models-dir", str(tiny_stack["models"])),
        *("--state-file", str(tiny_stack["state_file"])),
    )
    assert on_disk.returncode == 0, on_disk.stderr
    assert "models on disk" in on_disk.stderr
    assert json.loads(on_disk.stdout)[0]["status"] == "config ok"


def test_config_show_is_the_running_configuration_not_this_shells(
    tiny_stack: dict[str, Any],
) -> None:
    shell = {"OUTPOST_EDGE_ORIGINS": '[{"url": "http://127.0.0.1:9"}]'}
    state = ("--state-file", str(tiny_stack["state_file"]))
    running = _outpost("config", "show", "edge", *state, env=shell)
    assert running.returncode == 0, running.stderr
    assert "configuration of the running stack" in running.stderr
    edge = json.loads(running.stdout)["edge"]
    assert [o["url"] for o in edge["origins"]] == [o["url"] for o in tiny_stack["origins"]]
    assert edge["cache_max_bytes"] == 1048576  # inherited from the shell that ran `outpost up`
    assert edge["issuers"][0]["issuer"] == tiny_stack["issuer"]

    origin = json.loads(_outpost("config", "show", "origin", *state).stdout)["origin"]
    assert origin["models_dir"] == str(tiny_stack["models"])

    env_only = _outpost("config", "show", "edge", "--env", *state, env=shell)
    assert "configuration from env + defaults" in env_only.stderr
    assert [o["url"] for o in json.loads(env_only.stdout)["edge"]["origins"]] == [
        "http://127.0.0.1:9"
    ]


def test_a_state_file_left_by_a_killed_stack_is_not_taken_for_a_running_one(
    tiny_stack: dict[str, Any], tmp_path: Path
) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / "stack.json"
    stale.write_text(
        json.dumps({**json.loads(tiny_stack["state_file"].read_text()), "pid": dead.pid})
    )
    result = _outpost("config", "show", "stack", "--state-file", str(stale))
    assert result.returncode == 0, result.stderr
    assert "configuration from env + defaults (no stack running)" in result.stderr
    listed = _outpost(
        "models", "list", "--state-file", str(stale), "--models-dir", str(tiny_stack["models"])
    )
    assert "models on disk" in listed.stderr


def test_vault_status_checks_outposts_own_setup_of_the_running_stack(
    tiny_stack: dict[str, Any],
) -> None:
    result = _outpost("vault", "status", "--state-file", str(tiny_stack["state_file"]), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    checks = {row["check"]: row for row in json.loads(result.stdout)}
    assert all(row["ok"] for row in checks.values()), checks
    assert {
        "server",
        "admin login",
        "mounts",
        "policy outpost-origin",
        "policy outpost-admin",
        "approle outpost-origin",
        "origin secret_id",
        "transit key outpost-jwt",
        "kv outpost/origin/",
    } == set(checks)
    assert "version 1" in checks["transit key outpost-jwt"]["detail"]
    assert "last rotation" in checks["transit key outpost-jwt"]["detail"]
    vault_dir = Path(tiny_stack["vault"]["state_dir"])
    secrets = [
        (vault_dir / "admin-secret-id").read_text().strip(),
        json.loads((vault_dir / "origin-approle.json").read_text())["secret_id"],
        *json.loads((vault_dir / "demo-credentials.json").read_text()).values(),
    ]
    for secret in secrets:
        if len(secret) > 12:  # ids such as "demo-app" are names, not secrets
            assert secret not in result.stdout + result.stderr
