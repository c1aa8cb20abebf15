"""The edge's own request/response types, independent of ASGI and of Workers."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class EdgeRequest:
    """An incoming request; header names are lower-case."""

    method: str
    path: str
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    client_ip: str = ""


@dataclass(slots=True)
class EdgeResponse:
    """A response to send; header names are lower-case, values already strings."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(slots=True)
class UpstreamResponse:
    """What an origin answered (body fully read; transfer encodings already undone)."""

    status: int
    headers: dict[str, str]
    body: bytes


class UpstreamError(Exception):
    """An origin could not be reached (`kind` = "connect") or was too slow ("timeout")."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
