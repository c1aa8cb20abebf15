"""`wrangler deploy --dry-run` bundles the Python Worker offline, and what it would upload cannot
shadow the stdlib: the only top-level module is the entry; `edge` is vendored as a package."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.edge.conftest import ROOT


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """(wrangler's --outdir, its stdout) for the repo's real wrangler.toml."""
    wrangler = ROOT / "node_modules" / ".bin" / "wrangler"
    assert wrangler.exists(), "run `npm ci` first (package.json pins wrangler)"
    from edge.vendor import vendor

    vendor(ROOT / "python_modules")
    home = tmp_path_factory.mktemp("wrangler-home")
    out_dir = home / "dist"
    out = subprocess.run(
        [str(wrangler), "deploy", "--dry-run", "--outdir", str(out_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={
            "PATH": str(Path(shutil.which("node") or "node").parent),
            "HOME": str(home),
            "WRANGLER_SEND_METRICS": "false",
            "CI": "true",
        },
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "--dry-run: exiting now." in out.stdout
    yield out_dir, out.stdout


def _module_names(folder: Path) -> set[str]:
    """Importable top-level names in `folder`: `x.py` -> x, `pkg/` -> pkg."""
    names = set()
    for entry in folder.iterdir():
        if entry.is_dir() and entry.name not in ("__pycache__", "python_modules"):
            names.add(entry.name)
        elif entry.suffix == ".py":
            names.add(entry.stem)
    return names


def test_dry_run_bundles_the_entry_and_the_vendored_edge(dist: tuple[Path, str]) -> None:
    out_dir, _ = dist
    assert (out_dir / "entry.py").exists()
    assert "from edge.entry import Default" in (out_dir / "entry.py").read_text()
    vendored = out_dir / "python_modules"
    assert (vendored / "edge" / "core" / "app.py").exists()
    assert (vendored / "edge" / "adapters" / "worker.py").exists()
    assert (vendored / "edge" / "runtime" / "workers.py").exists()
    # Local-only modules stay out of the Worker.
    for local_only in (
        "server.py",
        "adapters/asgi.py",
        "adapters/clientip.py",
        "vendor.py",
        "runtime/local.py",
    ):
        assert not (vendored / "edge" / local_only).exists(), local_only


def test_uploaded_top_level_modules_do_not_shadow_the_stdlib(dist: tuple[Path, str]) -> None:
    out_dir, stdout = dist
    top = _module_names(out_dir)
    assert top == {"entry"}, f"only the entry may be uploaded at the top level, got {top}"
    vendored = _module_names(out_dir / "python_modules")
    assert vendored == {"edge", "cachetools"}
    shadowing = (top | vendored) & set(sys.stdlib_module_names)
    assert not shadowing, f"uploaded modules shadow the stdlib: {sorted(shadowing)}"
    # wrangler's own upload table lists modules outside python_modules: only the entry.
    listed = {
        line.split("│")[1].strip()
        for line in stdout.splitlines()
        if line.count("│") >= 3 and ".py" in line
    }
    assert listed <= {"entry.py"}, listed


def test_the_quota_durable_object_is_bound_and_migrated_to_sqlite(dist: tuple[Path, str]) -> None:
    import tomllib

    _, stdout = dist
    assert "env.QUOTAS (QuotaObject)" in stdout and "Durable Object" in stdout
    config = tomllib.loads((ROOT / "wrangler.toml").read_text())
    binding = config["durable_objects"]["bindings"][0]
    assert (binding["name"], binding["class_name"]) == ("QUOTAS", "QuotaObject")
    assert any("QuotaObject" in m.get("new_sqlite_classes", []) for m in config["migrations"])
    assert "QuotaObject" in (dist[0] / "entry.py").read_text()  # exported by wrangler's main
