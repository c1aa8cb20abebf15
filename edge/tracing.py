"""W3C Trace Context at the edge: parse what arrives, decide sampling, forward to the origin.

Platform-neutral (stdlib only: it imports inside Cloudflare's Pyodide). Per request:

    span = start_span(req.headers, now=platform.now(), sample_ratio=config.trace_sample_ratio)
    headers.update(span.outgoing_headers())          # the origin hop: the edge span as parent
    ...
    done = span.finish("POST embeddings", end=platform.now(), status_code=resp.status,
                       attributes={"http.route": "embeddings", ...})
    sink.emit(done)                                  # a JSON log line, or a real OTel span

`traceparent` and `tracestate` are parsed strictly by W3C Trace Context (Level 1): an invalid
`traceparent` starts a new trace (and drops `tracestate`), a malformed `tracestate` is dropped.
The caller's sampled flag is not trusted by default (a client could force every request to be
recorded): the edge decides with its own ratio and the origin follows the edge (parent-based).

Where the OpenTelemetry SDK cannot run (Workers), `LogSpanSink` writes one span-shaped JSON line
per sampled request (what Workers Logs and Logpush carry); the local edge can export real spans
through `edge.tracing_otel` instead. Attribute keys are an allowlist: no header, token, body or
free text can reach a span.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

VERSION = "00"
SAMPLED = 0x01
MAX_TRACESTATE_MEMBERS = 32
MAX_TRACESTATE_CHARS = 512  # what vendors must propagate at least; longer is trimmed
SERVICE_NAME = "outpost-edge"

_HEX_VERSION = re.compile(r"[0-9a-f]{2}")
_TRACEPARENT_00 = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_TRACEPARENT_FUTURE = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_KEY_CHARS = r"[a-z0-9_\-*/]"
_TRACESTATE_KEY = re.compile(
    rf"[a-z]{_KEY_CHARS}{{0,255}}|[a-z0-9]{_KEY_CHARS}{{0,240}}@[a-z]{_KEY_CHARS}{{0,13}}"
)
# value = 0*255(chr) nblk-chr; chr = %x20 / nblk-chr; nblk-chr = %x21-2B / %x2D-3C / %x3E-7E
_TRACESTATE_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")

# The only span attributes the edge records (values: str, int, float or bool).
ALLOWED_ATTRIBUTES = frozenset(
    {
        "http.request.method",
        "http.route",
        "http.response.status_code",
        "error.type",
        "outpost.request_id",
        "outpost.model.name",
        "outpost.model.version",
        "outpost.cache",  # HIT, MISS, STALE, BYPASS
        "outpost.pool",
        "outpost.origin.attempts",
        "outpost.rate_limited",
        "outpost.runtime",  # workers | local
        "outpost.colo",  # Cloudflare data center
    }
)
_MAX_VALUE_CHARS = 256


@dataclass(frozen=True, slots=True)
class TraceContext:
    """A valid incoming context: the caller's trace id and span id (`parent_id`)."""

    trace_id: str
    parent_id: str
    flags: int
    tracestate: str | None = None

    @property
    def sampled(self) -> bool:
        return bool(self.flags & SAMPLED)


def parse_traceparent(value: str | None) -> tuple[str, str, int] | None:
    """(trace id, parent id, flags) of a valid `traceparent`, else None."""
    if not value or len(value) < 55:
        return None
    if value.startswith(VERSION):
        match = _TRACEPARENT_00.fullmatch(value)  # version 00 is exactly 55 characters
    else:
        # A later version: same first four fields, then the end or a dash (forward compatible).
        match = _TRACEPARENT_FUTURE.fullmatch(value)
        if match is None or match[1] == "ff":
            return None
        match = _TRACEPARENT_00.fullmatch("00" + value[2:55])
    if match is None:
        return None
    trace_id, parent_id, flags = match[1], match[2], int(match[3], 16)
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return trace_id, parent_id, flags


def parse_tracestate(value: str | None) -> str | None:
    """A valid `tracestate` normalised (no blanks, at most 512 characters), else None.

    Multiple header lines arrive joined with commas. Empty list members are allowed and
    dropped; a malformed member, a duplicate key or more than 32 members invalidate it all.
    """
    if value is None:
        return None
    members: list[str] = []
    keys: set[str] = set()
    for raw in value.split(","):
        member = raw.strip(" \t")
        if not member:
            continue
        key, eq, val = member.partition("=")
        if not eq or key in keys:
            return None
        if not _TRACESTATE_KEY.fullmatch(key) or not _TRACESTATE_VALUE.fullmatch(val):
            return None
        keys.add(key)
        members.append(member)
    if not members or len(members) > MAX_TRACESTATE_MEMBERS:
        return None
    return _trim(members)


def _trim(members: list[str]) -> str | None:
    """Fit into MAX_TRACESTATE_CHARS: drop members over 128 characters, then from the end."""
    text = ",".join(members)
    if len(text) <= MAX_TRACESTATE_CHARS:
        return text
    members = [m for m in members if len(m) <= 128]
    while members and len(",".join(members)) > MAX_TRACESTATE_CHARS:
        members.pop()
    return ",".join(members) or None


def incoming_context(headers: Mapping[str, str]) -> TraceContext | None:
    """The caller's trace context from lower-case request headers, when valid."""
    parsed = parse_traceparent(headers.get("traceparent"))
    if parsed is None:
        return None
    trace_id, parent_id, flags = parsed
    return TraceContext(trace_id, parent_id, flags, parse_tracestate(headers.get("tracestate")))


# Ids and the sampling coin come from a generator seeded from the OS, not from a syscall per
# request: they must be unique and unguessable enough for correlation, not secret.
_rng = random.Random(os.urandom(32))


def sample(ratio: float, rand: Callable[[int], int] = _rng.getrandbits) -> bool:
    """True with probability `ratio` (the edge's own coin, not the trace id's bits, which a
    client chooses)."""
    if ratio >= 1:
        return True
    if ratio <= 0:
        return False
    return rand(53) < ratio * (1 << 53)


def _new_id(nbytes: int) -> str:
    while True:
        value = _rng.getrandbits(8 * nbytes)
        if value:  # all zeros is invalid (W3C Trace Context)
            return f"{value:0{2 * nbytes}x}"


@dataclass(slots=True)
class EdgeSpan:
    """The edge's span for one request: its ids, sampling decision and start time."""

    trace_id: str
    span_id: str
    parent_id: str | None  # the caller's span; None when the edge started the trace
    sampled: bool
    start: float  # wall-clock seconds
    tracestate: str | None = None

    @property
    def traceparent(self) -> str:
        """The `traceparent` for the origin hop: this span is the origin's parent."""
        return f"{VERSION}-{self.trace_id}-{self.span_id}-{SAMPLED if self.sampled else 0:02x}"

    def outgoing_headers(self) -> dict[str, str]:
        """Headers to set (replacing the caller's) on the request to the origin."""
        headers = {"traceparent": self.traceparent}
        if self.tracestate:
            headers["tracestate"] = self.tracestate
        return headers

    def finish(
        self,
        name: str,
        *,
        end: float,
        status_code: int,
        attributes: Mapping[str, str | int | float | bool] | None = None,
    ) -> FinishedSpan:
        """The finished span; raises ValueError for an attribute outside ALLOWED_ATTRIBUTES."""
        attrs: dict[str, str | int | float | bool] = {}
        for key, value in (attributes or {}).items():
            if key not in ALLOWED_ATTRIBUTES:
                raise ValueError(f"span attribute {key!r} is not in edge.tracing's allowlist")
            if not isinstance(value, (str, int, float, bool)):
                raise ValueError(f"span attribute {key!r} must be a str, int, float or bool")
            attrs[key] = value[:_MAX_VALUE_CHARS] if isinstance(value, str) else value
        attrs["http.response.status_code"] = status_code
        if status_code >= 500:
            attrs.setdefault("error.type", str(status_code))
        return FinishedSpan(self, name[:_MAX_VALUE_CHARS], end, status_code, attrs)


@dataclass(frozen=True, slots=True)
class FinishedSpan:
    span: EdgeSpan
    name: str
    end: float
    status_code: int
    attributes: dict[str, str | int | float | bool] = field(default_factory=dict)

    @property
    def error(self) -> bool:
        return self.status_code >= 500

    def log_record(self, service: str = SERVICE_NAME) -> dict[str, object]:
        """The span as a flat JSON object (names follow OpenTelemetry's span fields)."""
        s = self.span
        start_ns, end_ns = int(s.start * 1e9), int(self.end * 1e9)
        return {
            "span": self.name,
            "trace_id": s.trace_id,
            "span_id": s.span_id,
            "parent_span_id": s.parent_id or "",
            "kind": "server",
            "start_time_unix_nano": start_ns,
            "end_time_unix_nano": end_ns,
            "duration_ms": round(max(0, end_ns - start_ns) / 1e6, 3),
            "status": "error" if self.error else "unset",
            "service.name": service,
            "attributes": self.attributes,
        }

    def log_line(self, service: str = SERVICE_NAME) -> str:
        return json.dumps(self.log_record(service), separators=(",", ":"))


def start_span(
    headers: Mapping[str, str],
    *,
    now: float,
    sample_ratio: float,
    trust_sampled: bool = False,
) -> EdgeSpan:
    """Continue the caller's trace (or start one) with a new span for the edge.

    `trust_sampled`: follow the caller's sampled flag (for a trusted upstream, e.g. another
    proxy of yours); by default the edge decides with `sample_ratio`.
    """
    ctx = incoming_context(headers)
    if ctx is None:
        return EdgeSpan(_new_id(16), _new_id(8), None, sample(sample_ratio), now)
    sampled = ctx.sampled if trust_sampled else sample(sample_ratio)
    return EdgeSpan(ctx.trace_id, _new_id(8), ctx.parent_id, sampled, now, ctx.tracestate)


class SpanSink(Protocol):
    """Where finished edge spans go."""

    def emit(self, done: FinishedSpan) -> None: ...


class LogSpanSink:
    """One JSON line per sampled span through `write` (`print` in Workers: Workers Logs)."""

    def __init__(self, write: Callable[[str], None] = print, service: str = SERVICE_NAME) -> None:
        self._write = write
        self._service = service

    def emit(self, done: FinishedSpan) -> None:
        if done.span.sampled:
            self._write(done.log_line(self._service))
