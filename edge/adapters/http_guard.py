"""The local server's HTTP limits, in front of uvicorn's own protocol.

uvicorn (with httptools) bounds neither the request line, nor the headers, nor the time a client
takes to send them, and reads a chunked body whole before the app can refuse it. `GuardedHttp`
is the `asyncio.Protocol` uvicorn serves each connection with: it owns an ordinary uvicorn
`HttpToolsProtocol` and hands it every byte, but first runs the bytes through a parser of its own
(httptools, the same C parser) that only counts:

- request-line length (414), header bytes and header count (431), a declared or counted body over
  the largest any route takes (413, before the body is read; each route's own limit is the
  core's), malformed framing (400);
- time: a request's head must arrive within `header_timeout_seconds` of its first byte (and a new
  connection must start one that soon), its body within `body_timeout_seconds` (408).

A refused request gets a problem+json answer and the connection is closed; uvicorn never sees
it. The bytes fed to either parser while a head is incomplete are bounded, so one client cannot
make header parsing cost more than a few hundred KiB of work. Composition, not inheritance: it
uses only the asyncio.Protocol interface of uvicorn's class and uvicorn's documented option to
take a protocol class (`uvicorn.run(http=...)`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from edge.config import EdgeConfig
from edge.core.plan import new_request_id
from edge.core.problems import problem
from edge.core.request import normalise_path
from edge.core.routes import MethodNotAllowed, match
from edge.core.stats import Stats

log = logging.getLogger("edge.http")

# One socket read's worth of slack (uvloop reads up to 256 KiB at once): what the feeding bound
# allows past the limits before the guard stops feeding an incomplete head.
_READ_SLACK = 256 * 1024
# A message's phase, and what the timer watches: a new connection, a head, a body.
_IDLE, _HEAD, _BODY, _NEW = 0, 1, 2, 3


class _Stop(Exception):
    """Raised in a parser callback once a limit is crossed: httptools stops parsing there
    (feed_data raises HttpParserCallbackError), so the rest of a hostile read costs nothing."""


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_request_line_bytes: int
    max_header_bytes: int
    max_header_count: int
    body_limit_for: Callable[[bytes], int]  # the request target's body limit (its route's)
    header_timeout: float
    body_timeout: float

    @classmethod
    def from_config(cls, config: EdgeConfig) -> HttpLimits:
        def body_limit_for(target: bytes) -> int:
            path = normalise_path(target.split(b"?", 1)[0].decode("latin-1"))
            try:
                found = match("POST", path)
            except MethodNotAllowed:
                found = None
            return config.body_limit(found.route.name if found else "")

        return cls(
            config.max_request_line_bytes,
            config.max_header_bytes,
            config.max_header_count,
            body_limit_for,
            config.header_timeout_seconds,
            config.body_timeout_seconds,
        )


_REASONS = {
    400: ("malformed-http", "The request is not valid HTTP/1.1."),
    408: ("request-timeout", "The request was not sent in time."),
    413: ("too-large", "Request body exceeds {body} bytes."),
    414: ("uri-too-long", "The request target exceeds {line} bytes."),
    431: ("headers-too-large", "The request headers exceed {headers} bytes or {count} fields."),
}


def _refusal(status: int, limits: HttpLimits, body_limit: int) -> bytes:
    slug, detail = _REASONS[status]
    detail = detail.format(
        body=body_limit,
        line=limits.max_request_line_bytes,
        headers=limits.max_header_bytes,
        count=limits.max_header_count,
    )
    rid = new_request_id()
    resp = problem(status, slug, detail, rid, {"x-request-id": rid, "connection": "close"})
    head = "".join(f"{k}: {v}\r\n" for k, v in resp.headers.items())
    return (
        f"HTTP/1.1 {status} {_PHRASES[status]}\r\n{head}content-length: {len(resp.body)}\r\n\r\n"
    ).encode("latin-1") + resp.body


_PHRASES = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Content Too Large",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
}


def guarded_protocol(limits: HttpLimits, stats: Stats) -> type[asyncio.Protocol]:
    """The protocol class to pass as `uvicorn.run(..., http=...)`; refusals are counted in
    `stats` (`outpost_edge_refused_total`)."""

    class Guarded(GuardedHttp):
        _limits = limits
        _stats = stats

    return Guarded


class GuardedHttp(asyncio.Protocol):
    """One connection: counts, then hands the bytes to uvicorn's protocol (see the module)."""

    _limits: HttpLimits
    _stats: Stats

    def __init__(self, **uvicorn_args: Any) -> None:
        self._inner = HttpToolsProtocol(**uvicorn_args)
        self._loop: asyncio.AbstractEventLoop = self._inner.loop
        self._parser = httptools.HttpRequestParser(self)
        # What uvicorn's parser allows, ours allows.
        self._parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self._transport: asyncio.Transport | None = None
        self._phase = _IDLE
        self._url = 0
        self._target = bytearray()  # the request target, up to the request-line limit
        self._declared = -1  # Content-Length, when the request has one
        self._body_limit = 0
        self._header_bytes = 0
        self._headers = 0
        self._body = 0
        self._head_seen = 0  # bytes fed while this message's head was incomplete (estimate)
        self._began = False  # a message began during the current feed
        self._refused: int | None = None
        self._closed = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_phase: int | None = None

    # -- asyncio.Protocol: delegated ------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._inner.connection_made(transport)  # type: ignore[arg-type]
        # A connection must start a request as fast as a request must finish its head.
        self._arm(_NEW, self._limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._disarm()
        self._inner.connection_lost(exc)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        self._began = False
        if self._phase != _BODY:
            limits = self._limits
            allowance = (
                limits.max_request_line_bytes + limits.max_header_bytes + _READ_SLACK
            ) - self._head_seen
            if len(data) > allowance:
                first, rest = data[:allowance], data[allowance:]
                if not self._feed(first):
                    return
                if self._phase == _HEAD:  # the head did not end within the bound
                    self._refuse(414 if self._headers == 0 else 431)
                    return
                data = first + rest  # the head ended: hand over the whole read as it came
                if rest and not self._feed(rest):
                    return
                self._after_feed(len(data))
                self._inner.data_received(data)
                return
        if not self._feed(data):
            return
        self._after_feed(len(data))
        self._inner.data_received(data)

    # -- counting -------------------------------------------------------------------------------
    def _feed(self, data: bytes) -> bool:
        """Run `data` through the counting parser; False (and the connection answered and
        closed) when the request is refused."""
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # uvicorn's parser decides what an upgrade gets
        except httptools.HttpParserError:
            if self._refused is None:
                self._refused = 400
        if self._refused is not None:
            self._refuse(self._refused)
            return False
        return True

    def _after_feed(self, size: int) -> None:
        if self._phase == _HEAD:
            self._head_seen = size if self._began else self._head_seen + size
            if self._timer_phase != _HEAD:
                self._arm(_HEAD, self._limits.header_timeout)
        elif self._phase == _BODY:
            if self._timer_phase != _BODY:
                self._arm(_BODY, self._limits.body_timeout)
        elif self._timer_phase in (_HEAD, _BODY):
            self._disarm()

    def on_message_begin(self) -> None:
        self._phase = _HEAD
        self._began = True
        self._head_seen = 0
        self._url = self._header_bytes = self._headers = self._body = 0
        self._target.clear()
        self._declared = -1
        if self._timer_phase == _NEW:  # the connection's first request has started
            self._disarm()

    def _stop(self, status: int) -> None:
        if self._refused is None:
            self._refused = status
        raise _Stop

    def on_url(self, url: bytes) -> None:
        self._url += len(url)
        if self._url > self._limits.max_request_line_bytes:
            self._stop(414)
        self._target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers += 1
        self._header_bytes += len(name) + len(value) + 4  # ": " and CRLF
        limits = self._limits
        if self._headers > limits.max_header_count or self._header_bytes > limits.max_header_bytes:
            self._stop(431)
        if len(name) == 14 and name.lower() == b"content-length" and value.isdigit():
            self._declared = int(value) if len(value) < 19 else 1 << 62

    def on_headers_complete(self) -> None:
        self._phase = _BODY
        self._body_limit = self._limits.body_limit_for(bytes(self._target))
        if self._declared > self._body_limit:
            self._stop(413)  # refused before a byte of the body is read

    def on_body(self, body: bytes) -> None:
        self._body += len(body)
        if self._body > self._body_limit:
            self._stop(413)

    def on_message_complete(self) -> None:
        self._phase = _IDLE

    # -- refusing -------------------------------------------------------------------------------
    def _refuse(self, status: int) -> None:
        self._closed = True
        self._disarm()
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        self._stats.inc("outpost_edge_refused_total", _REASONS[status][0])
        log.debug("refused a request with %d (%s)", status, _REASONS[status][0])
        transport.write(_refusal(status, self._limits, self._body_limit))
        transport.close()

    def _arm(self, phase: int, seconds: float) -> None:
        self._disarm()
        self._timer_phase = phase
        self._timer = self._loop.call_later(seconds, self._expired, phase)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_phase = None

    def _expired(self, phase: int) -> None:
        self._timer = None
        self._timer_phase = None
        if self._closed:
            return
        if phase == _NEW:  # a new connection that never started a request: just close it
            self._closed = True
            if self._transport is not None:
                self._transport.close()
            return
        if self._phase == phase:
            self._refuse(408)
