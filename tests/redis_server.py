"""A real redis-server on a free loopback port, for the tests that share state through Redis.

`./dev test` installs Debian's redis-server when it is missing; a test that needs one fails
with that hint rather than skipping."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from tests.conftest import free_port


class RedisServer:
    """`settings` are redis-server options (no persistence by default); the port, a loopback
    bind and the working directory are the test's, whatever `settings` say."""

    def __init__(
        self,
        workdir: Path,
        settings: Sequence[str] = ("--save", "", "--appendonly", "no"),
    ) -> None:
        binary = shutil.which("redis-server")
        assert binary, (
            "redis-server is missing: ./dev test installs it (apt-get install redis-server)"
        )
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._argv = [
            binary,
            *settings,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(workdir),
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            self._argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
