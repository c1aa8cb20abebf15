"""Start a server for a benchmark, wait until it answers, stop it: the one way bench/ does it.

Every server runs in its own session (process group), its output in a log file, so `stop()`
reaches the helpers it forks (BentoML's workers, for one) and a Ctrl-C on the benchmark does not
hit the servers before the benchmark's own `finally` stops them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# No server under test may reach a model hub, and none inherits the caller's Outpost settings.
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without `OUTPOST_*` settings or an active virtualenv, plus the
    offline flags and `extra`: each server gets exactly the settings its benchmark names."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OUTPOST_", "VIRTUAL_ENV"))}
    return {**env, **OFFLINE, **(extra or {})}


@dataclass
class Server:
    """A process started by `spawn`; `url` is its base URL on loopback ("" if it has none)."""

    popen: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self, chars: int = 4000) -> str:
        """The end of its log, for error messages."""
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Send `sig` to its process group, then SIGKILL the group if it outlives `timeout`."""
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, sig)
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)
        except ProcessLookupError:
            pass


def spawn(
    argv: list[str],
    log: Path,
    *,
    url: str = "",
    env: Mapping[str, str] | None = None,
    cwd: Path = ROOT,
) -> Server:
    """Start `argv` in its own session, stdout and stderr to `log` (env: `clean_env()`)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        popen = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else clean_env(),
            cwd=cwd,
            start_new_session=True,
        )
    return Server(popen, url, log)


def wait_until(server: Server, ready: Callable[[], bool], what: str, timeout: float) -> None:
    """Poll `ready()` until it is true; stop the server and raise (with its log) if it exits
    first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.popen.poll() is not None:
            raise RuntimeError(
                f"{what}: exited with code {server.popen.returncode}:\n{server.output()}"
            )
        if ready():
            return
        time.sleep(0.2)
    server.stop()
    raise TimeoutError(f"{what}: not ready within {timeout:.0f} s:\n{server.output()}")


def answers(url: str) -> bool:
    """True when a GET of `url` answers 200 within 2 s."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_server(
    argv: list[str],
    port: int,
    health_path: str,
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path = ROOT,
    timeout: float = 180.0,
) -> Server:
    """`spawn` a server that listens on `port`, and wait until `health_path` answers 200."""
    server = spawn(argv, log, url=f"http://127.0.0.1:{port}", env=env, cwd=cwd)
    wait_until(server, lambda: answers(server.url + health_path), " ".join(argv[:3]), timeout)
    return server


@contextlib.contextmanager
def stopping(server: Server) -> Iterator[Server]:
    """Use `server` for the length of a `with` block; stopped on the way out, whatever
    happened inside: `with stopping(start_server(...)) as server:`."""
    try:
        yield server
    finally:
        server.stop()
