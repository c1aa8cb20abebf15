"""The `outpost` CLI as a user meets it: one clear line per failure, real model folders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from outpost.bench import BENCHMARKS
from outpost.effective_config import REDACTED, redact
from outpost.modelkit.tiny import build_tiny_tensor

ROOT = Path(__file__).resolve().parents[2]


def _outpost(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "outpost", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )


def test_validate_names_file_and_field_in_one_line_without_traceback(tmp_path: Path) -> None:
    good = tmp_path / "iris"
    build_tiny_tensor(good)
    bad = tmp_path / "broken"
    (bad / "1").mkdir(parents=True)
    (bad / "model.yaml").write_text("task: embeddings\nmax_sequence_length: -3\n")
    (bad / "1" / "model.onnx").write_bytes(b"not an onnx file")

    result = _outpost("models", "validate", "--models-dir", str(tmp_path))

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "✓" in result.stderr and str(good) in result.stderr
    problem = next(line for line in result.stderr.splitlines() if "✗" in line)
    assert "broken/model.yaml" in problem and "max_sequence_length" in problem
    assert "error: 1 problem(s) found" in result.stderr
    assert "hint:" in result.stderr


def test_models_list_reads_the_repository(tmp_path: Path) -> None:
    build_tiny_tensor(tmp_path / "iris", version=3)
    result = _outpost("models", "list", "--models-dir", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows == [{"name": "iris", "versions": [3], "task": "tensor", "status": "config ok"}]


def test_missing_stack_state_is_a_clear_error_with_hint(tmp_path: Path) -> None:
    result = _outpost("token", "--state-file", str(tmp_path / "stack.json"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "stack.json: missing" in result.stderr and "./dev up" in result.stderr


def test_config_show_prints_every_component_as_json() -> None:
    result = _outpost("config", "show")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert set(shown) == {"origin", "vault", "identity", "tracing", "edge", "stack"}
    assert shown["origin"]["max_body_bytes"] > 0


def test_redaction_hides_secret_values_but_keeps_pointers_to_them() -> None:
    cfg = {
        "client_secret": "abc",
        "nested": [{"api_key": "k-123", "token_ttl": 60}],
        "approle_file": "/run/secrets/approle.json",
        "transit_key": "outpost-jwt",
        "port": 8080,
    }
    assert redact(cfg) == {
        "client_secret": REDACTED,
        "nested": [{"api_key": REDACTED, "token_ttl": 60}],
        "approle_file": "/run/secrets/approle.json",
        "transit_key": "outpost-jwt",
        "port": 8080,
    }


def test_outpost_bench_passes_arguments_to_the_script() -> None:
    result = _outpost("bench", "gzip", "--", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: gzip_bench.py") and "--reps" in result.stdout


def test_outpost_bench_without_a_name_lists_every_benchmark() -> None:
    result = _outpost("bench")
    assert result.returncode == 0, result.stderr
    for name, entry in BENCHMARKS.items():
        assert name in result.stdout and entry.script in result.stdout


def test_an_unknown_benchmark_is_one_clear_line_with_the_choices() -> None:
    result = _outpost("bench", "peerz")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "no benchmark named 'peerz'" in result.stderr and "edge-floor" in result.stderr


def test_up_refuses_a_grpc_port_list_that_does_not_match_the_origins() -> None:
    result = _outpost("up", "--origin-ports", "9101,9102", "--origin-grpc-ports", "9111")
    assert result.returncode == 1
    assert "origin_grpc_ports needs one port per origin: 1 given for 2 origins" in result.stderr
    assert "Traceback" not in result.stderr
