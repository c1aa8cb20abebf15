"""Stage the Worker's Python dependencies into `python_modules/` for wrangler.

wrangler uploads `python_modules/` (next to wrangler.toml) as the Worker's site-packages: we
put the `edge` package there (without its local-only modules), so `edge/worker/entry.py` can
import `edge.entry` in production, and beside it the pinned pure-Python wheels in WORKER_DEPS
(cachetools); everything else comes from Pyodide's stdlib and the `workers` SDK.
Run: `python -m edge.vendor` (or `npm run vendor`).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKER_DEPS = ("cachetools==8.0.2",)  # pinned pure-Python wheels


def vendor(dest: Path = ROOT / "python_modules") -> Path:
    """(Re)create `dest` with the edge package and its pure-Python dependencies."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    _pip_install(dest)
    shutil.copytree(
        ROOT / "edge",
        dest / "edge",
        ignore=shutil.ignore_patterns(
            "__pycache__",
            "*.pyc",
            "vendor.py",
            "server.py",
            "asgi.py",
            "clientip.py",
            "http_guard.py",
            "__main__.py",
            "local.py",
            "tracing_otel.py",  # the local edge's OpenTelemetry exporter
            "worker",  # wrangler uploads edge/worker/entry.py itself (base_dir)
        ),
    )
    return dest


def _pip_install(dest: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-compile",
            "--target",
            str(dest),
            "--only-binary=:all:",
            *WORKER_DEPS,
        ],
        check=True,
    )
    for junk in dest.glob("*.dist-info"):
        shutil.rmtree(junk)


if __name__ == "__main__":
    print(vendor())
