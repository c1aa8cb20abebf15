"""The edge's own request and response types, and the one rule that builds a request.

Both inbound adapters (ASGI for the local server, the Worker's `fetch`) hand what they received
to `build_request`, so the core sees the same `EdgeRequest` for the same bytes on the wire:

- **Path:** kept in its percent-encoded form, normalised as RFC 3986 §6.2.2 allows: escapes of
  unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded, the hex digits of every other escape
  are upper-cased, and every character a path may not hold raw (controls, space, `"`, `<`, `#`,
  non-ASCII, a `%` that starts no escape, ...) is percent-encoded: its UTF-8 bytes, or the raw
  byte itself where an adapter received bytes that are not UTF-8 (adapters decode raw bytes as
  UTF-8 with `surrogateescape`). Routes match
  this form and it is forwarded to the origin unchanged, so an encoded `/` (`%2F`) or `?` stays
  data inside one segment and can never change which route or file a path names.
- **Query:** kept as received: its escapes are not decoded, and what it may not hold raw is
  percent-encoded as in the path.
- **Headers:** names lower-cased; a repeated header's values joined with `", "` in order
  (RFC 9110 §5.3). Values are kept as text (Latin-1 for raw bytes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# pchar (RFC 3986 §3.3) plus "/": what a path may hold raw, besides "%" escapes; a query may
# also hold "?" (§3.4).
_PATH_RAW = _UNRESERVED | frozenset("!$&'()*+,;=:@/")
_QUERY_RAW = _PATH_RAW | frozenset("?")
_PATH_PLAIN = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/]*")
_QUERY_NORMAL = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-F]{2})*")
_HEX = frozenset("0123456789ABCDEFabcdef")


@dataclass(slots=True)
class EdgeRequest:
    """An incoming request, built by `build_request`; header names are lower-case."""

    method: str
    path: str
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    client_ip: str = ""
    # Arrived on the local server's internal listener (metrics, detailed health); never set in
    # Workers, and never from anything the client sends.
    internal: bool = False
    scheme: str = "https"  # as the adapter received it (a DPoP proof's htu names it)

    @property
    def target(self) -> str:
        """The path and query as forwarded to the origin."""
        return f"{self.path}?{self.query}" if self.query else self.path


@dataclass(slots=True)
class EdgeResponse:
    """A response to send; header names are lower-case, values already strings."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    # The members of a problem+json answer the edge made itself (the finishing steps add the
    # protocol's own error member to them); None for any other answer.
    problem: dict[str, Any] | None = None


@dataclass(slots=True)
class UpstreamResponse:
    """What an origin answered (body fully read; transfer encodings already undone)."""

    status: int
    headers: dict[str, str]
    body: bytes


class UpstreamError(Exception):
    """An origin could not be reached (`kind` = "connect"), the connection broke before the
    answer was read ("disconnected"), or the origin was too slow ("timeout")."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


def _normalise(text: str, raw: frozenset[str], decode_unreserved: bool) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "%" and i + 2 < n and text[i + 1] in _HEX and text[i + 2] in _HEX:
            decoded = chr(int(text[i + 1 : i + 3], 16))
            if decode_unreserved and decoded in _UNRESERVED:
                out.append(decoded)
            else:
                out.append("%" + text[i + 1 : i + 3].upper())
            i += 3
            continue
        if char in raw:
            out.append(char)
        else:  # not allowed raw, or a "%" that starts no escape: its bytes encoded
            out.extend(f"%{b:02X}" for b in char.encode("utf-8", "surrogateescape"))
        i += 1
    return "".join(out)


def normalise_path(path: str) -> str:
    """A request path in the edge's form (see the module docstring); "/" for an empty one."""
    if _PATH_PLAIN.fullmatch(path):  # the common case: nothing to change
        return path or "/"
    return _normalise(path, _PATH_RAW, decode_unreserved=True)


def normalise_query(query: str) -> str:
    """A query with what it may not hold raw percent-encoded; its escapes are not decoded."""
    if _QUERY_NORMAL.fullmatch(query):
        return query
    return _normalise(query, _QUERY_RAW, decode_unreserved=False)


def join_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header pairs as a dict: names lower-cased, a repeated header's values joined in order."""
    headers: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def build_request(
    method: str,
    path: str,
    query: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    client_ip: str,
) -> EdgeRequest:
    """The edge's request for what an adapter received: `path` and `query` as they appeared in
    the request target (still percent-encoded), header pairs in the order received."""
    return EdgeRequest(
        method=method.upper(),
        path=normalise_path(path),
        query=normalise_query(query),
        headers=join_headers(headers),
        body=body,
        client_ip=client_ip,
    )
