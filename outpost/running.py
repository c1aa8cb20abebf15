"""The running local stack, as `outpost up` described it in `.outpost/stack.json`.

The CLI's read-only commands (`models list`, `config show`, `vault status`) ask the running stack
when there is one, rather than the current shell's environment and the folder on disk.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx


@dataclass(frozen=True)
class RunningStack:
    """A stack whose state file names a live `outpost up` process with an answering edge."""

    state_file: Path
    state: dict[str, Any]

    @property
    def edge_url(self) -> str:
        return str(self.state["edge"]["url"])

    @property
    def origin_urls(self) -> list[str]:
        return [str(o["url"]) for o in self.state.get("origins", [])]

    @property
    def origin_listings(self) -> dict[str, str]:
        """Each origin's URL -> where to read its model listing: its internal listener (no
        caller proof needed there) when it has one."""
        return {str(o["url"]): str(o.get("admin_url") or o["url"]) for o in self.state["origins"]}

    def describe(self) -> str:
        started = self.state.get("started_at", "?")
        return f"the running stack (started {started}, pid {self.state.get('pid', '?')})"


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return True  # a state file from before pids were recorded: let the edge check decide
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_running_stack(state_file: Path) -> RunningStack | None:
    """The stack described by `state_file`, or None when none is running.

    A state file left behind by a killed `outpost up` (its process gone, or its edge silent) does
    not count: the commands then fall back to the environment and the model folder.
    """
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or "edge" not in state or not _alive(state.get("pid")):
        return None
    stack = RunningStack(state_file, state)
    try:
        httpx.get(f"{stack.edge_url}/healthz", timeout=2.0).raise_for_status()
    except (httpx.HTTPError, KeyError, TypeError):
        return None
    return stack
