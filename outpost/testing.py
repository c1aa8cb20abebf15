"""`outpost test`: every check the project has, in the order that fails fastest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent


def _step(console: Console, title: str, argv: list[str]) -> int:
    console.rule(f"[bold]{title}")
    console.print(f"$ {' '.join(argv)}", style="dim")
    # NO_MKDOCS_2_WARNING: Material's end-of-life banner, not a finding of the docs build.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.call(argv, cwd=ROOT, env=env)


def run_all_checks(pytest_args: list[str], console: Console) -> int:
    """Run ruff, pytest (whole suite) and the strict docs build; return a process exit code."""
    bin_dir = Path(sys.executable).parent
    code = _step(console, "ruff", [str(bin_dir / "ruff"), "check", "."])
    if code:
        return code
    code = _step(console, "pytest", [sys.executable, "-m", "pytest", *pytest_args])
    if code:
        return code
    if (ROOT / "mkdocs.yml").exists():
        code = _step(console, "docs", [str(bin_dir / "mkdocs"), "build", "--strict", "-q"])
    return code
