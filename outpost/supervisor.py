"""Run several child processes as one: prefixed logs in one terminal, health waits, clean stop."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import httpx
from rich.console import Console
from rich.text import Text

from outpost.errors import OutpostError

_COLOURS = itertools.cycle(["cyan", "magenta", "green", "yellow", "blue", "bright_red"])


@dataclass
class Child:
    """One supervised process and where to ask whether it is healthy."""

    name: str
    process: subprocess.Popen[bytes]
    health_url: str | None
    colour: str
    pump: threading.Thread | None = field(default=None, repr=False)


class Supervisor:
    """Starts children, prefixes their output with the component name, and stops them all."""

    def __init__(self, console: Console, *, redact: Callable[[str], str] = lambda s: s) -> None:
        self.console = console
        self.children: list[Child] = []
        self._redact = redact

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        health_url: str | None = None,
        cwd: str | None = None,
    ) -> Child:
        proc = subprocess.Popen(
            list(argv),
            env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches us only; we stop children in order
        )
        child = Child(name, proc, health_url, next(_COLOURS))
        child.pump = threading.Thread(target=self._pump, args=(child,), daemon=True)
        child.pump.start()
        self.children.append(child)
        return child

    def _pump(self, child: Child) -> None:
        assert child.process.stdout is not None
        width = max(8, *(len(c.name) for c in self.children)) if self.children else 8
        for raw in iter(child.process.stdout.readline, b""):
            line = self._redact(raw.decode("utf-8", "replace").rstrip())
            prefix = Text(f"{child.name:<{width}} | ", style=child.colour)
            self.console.print(prefix + Text(line), highlight=False, soft_wrap=True)

    def wait_healthy(self, child: Child, *, timeout: float = 120.0) -> None:
        """Poll the health URL until it answers 2xx; fail clearly if the child dies or times out."""
        if child.health_url is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = child.process.poll()
            if code is not None:
                raise OutpostError(
                    f"{child.name} exited with code {code} before it became healthy",
                    hint=f"read the '{child.name} |' lines above for the reason",
                )
            try:
                if httpx.get(child.health_url, timeout=1.0).is_success:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise OutpostError(
            f"{child.name} did not become healthy within {timeout:.0f}s ({child.health_url})",
            hint="check its log lines above; ports may be taken (see `outpost up --help`)",
        )

    def watch(self) -> str | None:
        """Block until a child exits (its name is returned) or Ctrl-C is pressed (None)."""
        try:
            while True:
                for child in self.children:
                    if child.process.poll() is not None:
                        return child.name
                time.sleep(0.3)
        except KeyboardInterrupt:
            return None

    def stop_all(self, *, grace: float = 10.0) -> None:
        """SIGTERM in reverse start order, then SIGKILL whatever outlives the grace period."""
        for child in reversed(self.children):
            if child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in reversed(self.children):
            remaining = max(0.1, deadline - time.monotonic())
            try:
                child.process.wait(remaining)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait(5)
        for child in self.children:
            if child.pump is not None:
                child.pump.join(timeout=2)
