"""What every bench/results/*.json starts with, and how it is written."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any


def now_utc() -> str:
    """The time a run was measured, ISO 8601 in UTC (`2026-12-06T04:28:00Z`)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def date_utc() -> str:
    """The `date` of the peers' results (bench/peers/), to the minute: `2026-12-06 04:28 UTC`."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def stamp(benchmark: str) -> dict[str, Any]:
    """The head of a result: which benchmark, when, and on how many CPUs with which Python."""
    machine = {"cpus": os.cpu_count(), "python": platform.python_version()}
    return {"benchmark": benchmark, "when": now_utc(), "machine": machine}


def write_json(path: Path, result: dict[str, Any], indent: int = 2) -> None:
    """Write `result` to `path` (folders created), ending with a newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=indent) + "\n")
