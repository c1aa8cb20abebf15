"""The supervisor that `outpost up` uses: real child processes, prefixed logs, clean stops."""

from __future__ import annotations

import io
import sys

import pytest
from rich.console import Console

from outpost.errors import OutpostError
from outpost.supervisor import Supervisor
from tests.conftest import free_port


def _console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=200, color_system=None), buf


def test_child_becomes_healthy_logs_with_prefix_and_stops_cleanly() -> None:
    console, buf = _console()
    sup = Supervisor(console)
    port = free_port()
    child = sup.start(
        "web",
        [
            sys.executable,
            "-u",
            "-c",
            "import http.server,sys;print('hello from child', flush=True);"
            f"http.server.ThreadingHTTPServer(('127.0.0.1',{port}),"
            "http.server.SimpleHTTPRequestHandler).serve_forever()",
        ],
        health_url=f"http://127.0.0.1:{port}/",
    )
    try:
        sup.wait_healthy(child, timeout=20)
        assert child.process.poll() is None
    finally:
        sup.stop_all(grace=5)
    assert child.process.poll() is not None
    assert "web" in buf.getvalue() and "| hello from child" in buf.getvalue()


def test_child_that_dies_before_healthy_is_one_clear_error() -> None:
    console, _ = _console()
    sup = Supervisor(console)
    child = sup.start(
        "broken",
        [sys.executable, "-c", "raise SystemExit(3)"],
        health_url=f"http://127.0.0.1:{free_port()}/",
    )
    with pytest.raises(OutpostError) as err:
        sup.wait_healthy(child, timeout=20)
    sup.stop_all()
    assert "broken exited with code 3" in err.value.message
    assert err.value.hint


def test_redaction_hook_applies_to_every_log_line() -> None:
    console, buf = _console()
    sup = Supervisor(console, redact=lambda line: line.replace("s3cr3t", "***"))
    child = sup.start("talker", [sys.executable, "-c", "print('token=s3cr3t')"])
    child.process.wait(20)
    sup.stop_all()
    assert "token=***" in buf.getvalue()
    assert "s3cr3t" not in buf.getvalue()
