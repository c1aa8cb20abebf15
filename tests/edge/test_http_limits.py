"""The local server's HTTP limits (edge/adapters/http_guard.py), against `python -m edge` over raw
sockets: each refusal is its problem+json status on a closed connection, sent before the rest
of what the client meant to send was read, and the edge keeps serving everyone else."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.edge.conftest import Issuer, Proc, embed, issuer_settings, start_edge

LIMITS = {
    "max_request_line_bytes": 512,
    "max_header_bytes": 2048,
    "max_header_count": 20,
    "max_request_bytes": 4096,
    "header_timeout_seconds": 0.5,
    "body_timeout_seconds": 0.5,
}


@pytest.fixture(scope="module")
def edge(issuer: Issuer, oidc_issuer: Issuer, shared_origin: Proc, log_dir: Path) -> Iterator[Proc]:
    proc = start_edge(
        {
            "origins": [{"url": shared_origin.url}],
            "issuers": issuer_settings(issuer, oidc_issuer),
            **LIMITS,
        },
        log_dir,
    )
    yield proc
    proc.stop()


def _connect(edge: Proc) -> socket.socket:
    host, port = edge.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes, bool]:
    """(status, headers, body, whether the server then closed the connection)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    closed = False
    try:
        sock.settimeout(5)
        closed = sock.recv(1) == b""
    except (ConnectionResetError, TimeoutError):
        closed = True
    return status, headers, body, closed


def _send_all_until_refused(sock: socket.socket, chunks: Iterator[bytes]) -> int:
    """Send until the server stops reading; the bytes that went out."""
    sent = 0
    try:
        for chunk in chunks:
            sock.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent


def _assert_problem(status: int, expected: int, headers: dict[str, str], body: bytes) -> None:
    assert status == expected
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    problem = json.loads(body)
    assert problem["status"] == expected
    assert problem["request_id"] == headers["x-request-id"]


def _still_serves(edge: Proc, issuer: Issuer) -> None:
    with httpx.Client(timeout=30) as client:
        assert embed(client, edge, issuer.token("ed-1"), "after an attack").status_code == 200


def test_a_request_line_over_the_limit_is_414(edge: Proc, issuer: Issuer) -> None:
    with _connect(edge) as sock:
        sock.sendall(b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: e\r\n\r\n")
        status, headers, body, closed = _read_answer(sock)
    _assert_problem(status, 414, headers, body)
    assert closed
    _still_serves(edge, issuer)


def test_one_huge_header_is_431_before_it_is_read_whole(edge: Proc, issuer: Issuer) -> None:
    """A header of 32 MiB: refused once the bound is passed, not parsed to its end (the rest
    of it is never read: the client's send fails or is dropped)."""
    with _connect(edge) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: e\r\nX-Big: ")

        def body() -> Iterator[bytes]:
            for _ in range(512):
                yield b"x" * 65536

        sent = _send_all_until_refused(sock, body())
        status, headers, answer, closed = _read_answer(sock)
    _assert_problem(status, 431, headers, answer)
    assert closed
    assert sent < 32 << 20
    _still_serves(edge, issuer)


def test_too_many_header_fields_is_431(edge: Proc) -> None:
    fields = b"".join(b"X-F%d: v\r\n" % i for i in range(40))
    with _connect(edge) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: e\r\n" + fields + b"\r\n")
        status, headers, body, _ = _read_answer(sock)
    _assert_problem(status, 431, headers, body)


def test_a_declared_body_over_the_limit_is_413_before_any_body_is_sent(edge: Proc) -> None:
    with _connect(edge) as sock:
        sock.sendall(
            b"POST /v1/embeddings HTTP/1.1\r\nHost: e\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10000000\r\n\r\n"
        )
        status, headers, body, closed = _read_answer(sock)
    _assert_problem(status, 413, headers, body)
    assert closed


def test_a_chunked_body_over_the_limit_is_413_while_it_is_read(edge: Proc) -> None:
    with _connect(edge) as sock:
        sock.sendall(
            b"POST /v1/embeddings HTTP/1.1\r\nHost: e\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )

        def chunks() -> Iterator[bytes]:
            for _ in range(4096):  # 64 MiB if it were all read
                yield b"4000\r\n" + b"x" * 0x4000 + b"\r\n"

        sent = _send_all_until_refused(sock, chunks())
        status, headers, body, closed = _read_answer(sock)
    _assert_problem(status, 413, headers, body)
    assert closed
    assert sent < 64 << 20


def test_a_head_that_never_ends_is_408_after_the_header_timeout(edge: Proc) -> None:
    with _connect(edge) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: e\r\n")
        for _ in range(3):  # a slow drip: each byte well inside the timeout, the head never done
            time.sleep(0.2)
            sock.sendall(b"X")
        status, headers, body, closed = _read_answer(sock)
    _assert_problem(status, 408, headers, body)
    assert closed


def test_a_body_that_never_ends_is_408_after_the_body_timeout(edge: Proc, issuer: Issuer) -> None:
    token = issuer.token("ed-1")
    with _connect(edge) as sock:
        sock.sendall(
            b"POST /v1/embeddings HTTP/1.1\r\nHost: e\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {token}\r\n".encode()
            + b"Content-Length: 100\r\n\r\n{"
        )
        status, headers, body, closed = _read_answer(sock)
    _assert_problem(status, 408, headers, body)
    assert closed


def test_a_connection_that_never_starts_a_request_is_closed(edge: Proc) -> None:
    with _connect(edge) as sock:
        sock.settimeout(10)
        assert sock.recv(1) == b""  # closed by the server, without an answer


def test_malformed_http_is_400_problem(edge: Proc) -> None:
    with _connect(edge) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: e\r\nBad Header Line\r\n\r\n")
        status, headers, body, closed = _read_answer(sock)
    _assert_problem(status, 400, headers, body)
    assert closed


def test_refusals_are_counted_by_reason(edge: Proc) -> None:
    from tests.edge.conftest import edge_metric

    before = edge_metric(edge, "outpost_edge_refused_total", reason="uri-too-long")
    with _connect(edge) as sock:
        sock.sendall(b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: e\r\n\r\n")
        _read_answer(sock)
    assert edge_metric(edge, "outpost_edge_refused_total", reason="uri-too-long") == before + 1


def test_keep_alive_and_pipelined_requests_within_the_limits_are_served(edge: Proc) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: e\r\n\r\n"
    with _connect(edge) as sock:
        stream = sock.makefile("rb")

        def response() -> int:
            status = int(stream.readline().split()[1])
            length = 0
            while (line := stream.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            assert json.loads(stream.read(length))["status"]
            return status

        sock.sendall(request * 3)
        assert [response() for _ in range(3)] == [200, 200, 200]
        # Still open for the next request, after the guard's timeouts would have run.
        time.sleep(0.8)
        sock.sendall(request)
        assert response() == 200
