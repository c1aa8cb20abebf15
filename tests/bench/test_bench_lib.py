"""bench/lib: the helpers every benchmark shares do what their docstrings promise."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from bench.lib import components, constant_app, procs, rawhttp, usage
from bench.lib.stats import percentile
from bench.lib.texts import LENGTHS, make_texts


@pytest.mark.parametrize("n", [1, 2, 3, 10, 101, 1000])
def test_percentile_is_linear_interpolation_as_numpy_and_statistics_compute_it(n: int) -> None:
    values = [random.Random(n).expovariate(1.0) for _ in range(n)]
    for q in (0, 1, 50, 90, 99, 99.9, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), abs=1e-12)
    assert percentile(values, 50) == pytest.approx(statistics.median(values), abs=1e-12)
    if n > 1:
        inclusive = statistics.quantiles(values, n=100, method="inclusive")
        assert [percentile(values, q) for q in range(1, 100)] == pytest.approx(inclusive)


def test_percentile_of_nothing_is_nan_and_a_bad_q_is_refused() -> None:
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], 101)


def test_texts_are_the_ones_the_published_peers_results_were_measured_with() -> None:
    """Same seed, same texts: bench/results/peers*.json stay comparable with new runs."""
    digests = {
        kind: hashlib.sha256(json.dumps(make_texts(kind, n)).encode()).hexdigest()[:16]
        for kind, n in (("short", 4000), ("long", 2000))
    }
    assert digests == {"short": "85f8e5269077aa9d", "long": "d4a6ac981c598ea3"}


@pytest.mark.parametrize("kind", ["short", "long"])
def test_texts_are_distinct_and_of_their_kind(kind: str) -> None:
    texts = make_texts(kind, 300, seed=5)
    assert len(set(texts)) == 300 and texts == make_texts(kind, 300, seed=5)
    lo, hi = LENGTHS[kind]
    assert all(lo <= len(t.split()) <= hi for t in texts)
    assert texts != make_texts(kind, 300, seed=6)


def test_a_server_that_exits_during_start_fails_with_its_log(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "print('cannot bind'); raise SystemExit(3)"]
    with pytest.raises(RuntimeError, match="code 3") as info:
        procs.start_server(argv, procs.free_port(), "/", tmp_path / "x.log", timeout=30)
    assert "cannot bind" in str(info.value)


def test_stop_ends_the_whole_process_group(tmp_path: Path) -> None:
    """Servers that fork helpers (BentoML's workers) leave nothing behind."""
    code = "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"
    server = procs.spawn([sys.executable, "-c", code], tmp_path / "x.log")
    parent = psutil.Process(server.pid)
    deadline = time.monotonic() + 10
    while not parent.children() and time.monotonic() < deadline:
        time.sleep(0.05)
    (helper,) = parent.children()
    server.stop(timeout=10)
    assert server.popen.poll() is not None
    helper.wait(timeout=10)  # raises psutil.TimeoutExpired if the helper outlived the group
    assert not helper.is_running()


def test_raw_client_reads_answers_on_one_keep_alive_connection(tmp_path: Path) -> None:
    body = "x" * 70_000  # more than one read's worth
    answer = [[["content-type", "text/plain"], ["x-check", "1"]], body]
    port = procs.free_port()
    raw = rawhttp.request_bytes(port, "/any", b'{"a": 1}', {"x-test": "yes"})

    async def two_requests() -> list[int]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        statuses = [await rawhttp.exchange(reader, writer, raw) for _ in range(2)]
        writer.close()
        return statuses

    with procs.stopping(constant_app.start(port, tmp_path / "c.log", answer)):
        assert asyncio.run(two_requests()) == [200, 200]
        load = asyncio.run(rawhttp.closed_loop(port, lambda _: raw, 2, 0.3, warmup=0.1))
    assert load.ok > 0 and load.errors == 0 and len(load.latencies) == load.ok
    assert load.elapsed >= load.seconds


def test_raw_client_reads_chunked_answers_then_the_next_on_the_same_connection() -> None:
    answers = [
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 2\r\n\r\n{}",
    ]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in answers:
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(2)  # the request's body: b"{}"
            writer.write(answer)
        writer.close()

    async def run() -> list[int]:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        raw = rawhttp.request_bytes(port, "/", b"{}")
        statuses = [await rawhttp.exchange(reader, writer, raw) for _ in answers]
        writer.close()
        server.close()
        return statuses

    assert asyncio.run(run()) == [200, 429]


def test_cpu_accounting_counts_a_busy_process_and_divides_per_request() -> None:
    me = {"bench": psutil.Process()}
    before = usage.cpu_seconds(me, children=True)
    end = time.process_time() + 0.1
    while time.process_time() < end:
        pass
    spent = usage.spent(before, usage.cpu_seconds(me, children=True))
    # psutil reads CPU time in clock ticks (10 ms): each reading may be a tick short.
    assert spent["bench"] >= 0.07 and usage.LOAD_GENERATOR in spent
    assert usage.cpu_per_request({"a": 0.5, "b": 1e-9}, 1000) == {"a": 500}
    assert usage.cpu_per_request({"a": 0.0123456}, 1000, ndigits=2) == {"a": 12.35}
    assert usage.cpu_shares({"a": 3.0, "b": 1.0, "c": 0.0}) == {"a": 0.75, "b": 0.25}


def _spinner(seconds: float, in_thread: bool) -> list[str]:
    spin = f"end = time.process_time() + {seconds}\n    while time.process_time() < end: pass"
    code = f"import threading, time\ndef spin():\n    {spin}\n"
    if in_thread:
        code += "t = threading.Thread(target=spin); t.start(); time.sleep(3); t.join()"
    else:
        code += "spin()"
    return [sys.executable, "-c", code]


def test_core_split_puts_each_busy_thread_and_the_load_generator_in_its_part() -> None:
    # the "server" spins in a worker thread while its main thread sleeps
    server = subprocess.Popen(_spinner(2.0, in_thread=True))
    try:
        time.sleep(0.3)
        split = usage.CoreSplit(server.pid)
        split.before_load()
        load = subprocess.Popen(_spinner(0.4, in_thread=False))
        time.sleep(0.1)
        split.start(load.pid)
        load.wait(10)
        time.sleep(0.3)
        cores = split.cores()
    finally:
        server.kill()
        server.wait()
    assert cores["server other threads"] >= 0.5, cores
    assert cores["server main thread"] <= 0.1, cores
    assert cores["load generator"] >= 0.15, cores
    # the parts never add up to more than the machine has
    assert cores["rest of the machine"] >= -0.1, cores


def test_edge_settings_are_outpost_edge_variables_in_json() -> None:
    env = components.edge_env("http://i", "http://i/jwks.json", cache_max_bytes=1024, mode="x")
    assert json.loads(env["OUTPOST_EDGE_ISSUERS"]) == [
        {"issuer": "http://i", "jwks_url": "http://i/jwks.json", "audience": "outpost"}
    ]
    limits = json.loads(env["OUTPOST_EDGE_RATE_LIMITS"])
    assert limits["inference"]["rate"] >= 1e6 and limits["default"]["burst"] >= 1e6
    assert env["OUTPOST_EDGE_CACHE_MAX_BYTES"] == "1024" and env["OUTPOST_EDGE_MODE"] == "x"
