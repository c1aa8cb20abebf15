"""Requests as raw bytes on a socket: header values and bodies that HTTP allows but client
libraries refuse to send (bytes outside ASCII and UTF-8, repeated fields), for the fuzz suites."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def raw_request(
    base_url: str,
    method: str,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes = b"",
    timeout: float = 30.0,
) -> RawAnswer:
    """Send one request (`Content-Length` framing, `Connection: close`) and read the answer."""
    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    head = [method.encode() + b" " + target + b" HTTP/1.1", f"host: {host}:{port}".encode()]
    head += [name + b": " + value for name, value in headers]
    head += [b"content-length: " + str(len(body)).encode(), b"connection: close"]
    data = b"\r\n".join(head) + b"\r\n\r\n" + body
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    head_bytes, _, payload = received.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    found = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    length = found.get("content-length")
    return RawAnswer(status, found, payload[: int(length)] if length else payload)
