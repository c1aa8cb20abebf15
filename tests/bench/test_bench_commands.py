"""Every `outpost bench` command has a script that starts, and bench/ stands apart from the
tests (the command line itself: tests/cli/test_cli.py)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from outpost import bench
from outpost.bench import BENCHMARKS

ROOT = Path(__file__).resolve().parents[2]


def test_every_benchmark_script_exists_and_starts() -> None:
    """Each command's script imports and parses its options (`--help`), under the Python the
    command picks; run side by side to keep the suite short."""
    runs = {}
    for name in BENCHMARKS:
        argv, _ = bench.command(name, ["--help"])
        runs[name] = subprocess.Popen(
            argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    for name, proc in runs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{name}: {err[-2000:]}"
        assert out.startswith("usage: " + Path(BENCHMARKS[name].script).name), (name, out[:200])


def test_peer_benchmarks_say_when_their_load_venv_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(bench, "LOADGEN_PYTHON", tmp_path / "missing" / "python")
    argv, note = bench.command("peers", ["--quick"])
    assert argv == [sys.executable, str(ROOT / "bench/peers/run.py"), "--quick"]
    assert note and "bench/peers/setup.sh" in note
    monkeypatch.setattr(bench, "LOADGEN_PYTHON", Path(sys.executable))
    assert bench.command("peers", [])[1] is None
    assert bench.command("edge", [])[0][0] == sys.executable


def test_bench_imports_nothing_from_the_tests() -> None:
    """bench/ measures the product; what the tests build around it may change at any time."""
    offenders = []
    for path in sorted((ROOT / "bench").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            bad = [n for n in names if n.split(".")[0] == "tests"]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in bad]
    assert offenders == []
