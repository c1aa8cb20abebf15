"""Fixtures shared by every part of the suite."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def port() -> int:
    return free_port()


ROOT = Path(__file__).resolve().parent.parent


@dataclass
class StackHandle:
    """A running `outpost up` (real OpenBao, two origins, the edge) and what it wrote."""

    process: subprocess.Popen[bytes]
    state_dir: Path
    log: Path
    state: dict[str, Any]
    ports: list[int]

    def token(self, scope: str = "inference models:read") -> str:
        from outpost.localtoken import fetch_local_token

        return fetch_local_token(self.state_dir / "stack.json", scope)

    def stop(self, timeout: float = 60, sig: int = signal.SIGINT) -> int:
        """Ctrl-C (or `sig`), as a user or a service manager would; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


def start_stack(
    state_dir: Path,
    *,
    ports: list[int] | None = None,
    timeout: float = 300,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> StackHandle:
    """Run `python -m outpost up` (on free ports unless given: vault, origin, origin, edge,
    the edge's internal listener, the two origins' gRPC ports and their internal listeners),
    with extra `args` and environment variables `env`.

    Demo models come from the shared build cache, so only the first run in a checkout builds them.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    ports = ports or [free_port() for _ in range(9)]
    env = {
        **os.environ,
        "OUTPOST_STACK_STATE_DIR": str(state_dir),
        "OUTPOST_STACK_CACHE_DIR": str(ROOT / ".outpost" / "cache"),
        **(env or {}),
    }
    log = state_dir / "up.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "outpost",
                "up",
                "--vault-port",
                str(ports[0]),
                "--origin-ports",
                f"{ports[1]},{ports[2]}",
                "--edge-port",
                str(ports[3]),
                "--edge-admin-port",
                str(ports[4]),
                "--origin-grpc-ports",
                f"{ports[5]},{ports[6]}",
                "--origin-admin-ports",
                f"{ports[7]},{ports[8]}",
                *args,
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    state_file = state_dir / "stack.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"outpost up exited {proc.returncode}:\n{log.read_text()[-4000:]}")
        if state_file.exists():
            return StackHandle(proc, state_dir, log, json.loads(state_file.read_text()), ports)
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"outpost up not ready after {timeout}s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def running_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The whole local stack, shared by the tests that exercise it end to end.

    Yields the parsed `.outpost/stack.json` plus `token` (a callable returning a fresh token)
    and `log` (the combined, prefixed log file of every component).
    """
    handle = start_stack(tmp_path_factory.mktemp("stack"))
    try:
        state_file = str(handle.state_dir / "stack.json")
        yield {
            **handle.state,
            # `./dev token` would first check the install; the test venv is already set up.
            "token_command": [sys.executable, "-m", "outpost", "token", "--state-file", state_file],
            "token": handle.token,
            "log": handle.log,
            "handle": handle,
        }
    finally:
        handle.stop()


class ServedApp:
    """A real uvicorn server in a thread on a free port; `config` goes to `uvicorn.Config`."""

    def __init__(self, app: Any, **config: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config.setdefault("log_level", "warning")
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, **config)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServedApp:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
