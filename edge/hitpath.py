"""uvicorn's httptools protocol, serving small POSTs without the ASGI adapter.

Through ASGI a request costs a task running uvicorn's cycle, six message dicts, the scope
translated back into an `EdgeRequest`, uvicorn's per-header checks and two socket writes: more
than the edge's own work for a cache hit (bench/edge_bench.py). For a POST with a small body and
a Content-Length, on a keep-alive connection with nothing pipelined ahead of it, this protocol
holds the body back instead of starting the ASGI cycle and builds the `EdgeRequest` itself:

- A fresh cache hit is answered at once, from the parser callback, in one socket write
  (`EdgeApp.take_hit`). Its answer is encoded once per cache entry, with holes for what changes
  per request (`EncodedHit`), rather than built and encoded for every hit.
- Anything else (a miss, no-cache, an error) runs `EdgeApp.handle` in a task, as the ASGI
  adapter would, and is written in one socket write. uvicorn's cycle object is still created,
  so pipelining, keep-alive, graceful shutdown and disconnects work as for ASGI requests.

Two more of uvicorn's per-request costs go: the ASGI scope is built only for requests that
reach uvicorn's cycle, and the keep-alive timeout is kept by one timer per connection instead
of a timer armed and cancelled around every request.

Requests it does not hold (other methods, large or chunked bodies, HTTP/1.0, expect-100,
pipelined ones) go to the ASGI app exactly as uvicorn sends them.

This subclasses uvicorn's protocol and leans on its attributes (parser, headers, cycle,
pipeline, flow): the uvicorn version is pinned in pyproject.toml, and tests/edge/test_hitpath.py
runs it in a real uvicorn server.
"""

from __future__ import annotations

import dataclasses
import logging
import urllib.parse
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import (
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from edge.app import EdgeApp, FreshHit
from edge.asgi import ASGIEdge
from edge.cache import ENCODED_HIT_MAX_BYTES
from edge.messages import EdgeRequest, EdgeResponse
from edge.problems import problem

log = logging.getLogger("edge.hitpath")


def encode_response(resp: EdgeResponse, default_headers: bytes, keep_alive: bool) -> bytes:
    """A whole HTTP/1.1 response as uvicorn writes one (its default headers first, then ours,
    then Content-Length), in one buffer for one socket write."""
    headers = resp.headers
    # uvicorn's own rule for header values (through ASGI it would raise and answer 500); text
    # that is all printable cannot break it, and checking that first is the cheaper test.
    values = "".join(headers.values())
    if not values.isprintable() and HEADER_VALUE_RE.search(values.encode("latin-1", "replace")):
        raise ValueError("a response header value holds a control character")
    lines = "".join([f"{k}: {v}\r\n" for k, v in headers.items()])
    if not keep_alive:
        lines += "connection: close\r\n"
    bodyless = resp.status in (204, 304)  # as the ASGI adapter: no length, no body
    return b"%s%s%s%s\r\n%s" % (
        STATUS_LINE[resp.status],
        default_headers,
        lines.encode("latin-1", "replace"),
        b"" if bodyless else b"content-length: %d\r\n" % len(resp.body),
        b"" if bodyless else resp.body,
    )


def _reading_all(method: Any) -> Any:
    """`method` of dict, noting on the `_ReadsRecorded` it is called on that it saw everything."""

    def read_all(self: _ReadsRecorded) -> Any:
        self.whole = True
        return method(self)

    return read_all


class _ReadsRecorded(dict[str, str]):
    """Request headers that note each name read and what it held (None: absent); `whole` once
    anything looked at all of them."""

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__(headers)
        self.read: dict[str, str | None] = {}
        self.whole = False

    def get(self, name: str, default: Any = None) -> Any:
        self.read[name] = dict.get(self, name)
        return dict.get(self, name, default)

    def __getitem__(self, name: str) -> str:
        self.read[name] = dict.get(self, name)
        return dict.__getitem__(self, name)

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self.read[name] = dict.get(self, name)
        return dict.__contains__(self, name)

    __iter__ = _reading_all(dict.__iter__)
    keys = _reading_all(dict.keys)
    values = _reading_all(dict.values)
    items = _reading_all(dict.items)


_HOLE = "<<outpost-hole-%d>>"


class EncodedHit:
    """A cache entry's hit answer encoded once, with holes for what changes per request: the
    date, the entry's age, the request id and the rate-limit header values.

    It is made by `EdgeApp.hit_answer` and `encode_response` themselves, with markers for those
    values, so it holds exactly what they would send. It answers requests of the kind it was
    made for: the same value (or absence) of every request header that making it read, such as
    Accept-Encoding (gzip) or Origin (CORS), and the same rate-limit header names. Other hits on
    the entry are built and encoded as before."""

    __slots__ = ("_body", "_extra", "_head", "_reads", "_status")

    def __init__(
        self,
        reads: tuple[tuple[str, str | None], ...],
        extra: tuple[str, ...],
        status: bytes,
        head: str,
        body: bytes,
    ) -> None:
        self._reads = reads
        self._extra = extra
        self._status = status
        self._head = head  # headers and content length, holes as {0} (age), {1} (id), ...
        self._body = body

    @classmethod
    def make(cls, app: EdgeApp, hit: FreshHit) -> EncodedHit | None:
        """`hit`'s answer with holes; None if it cannot be kept (too large, or depending on more
        than some named request headers). Raises what `encode_response` raises."""
        headers = _ReadsRecorded(hit.req.headers)
        holes = [_HOLE % i for i in range(2 + len(hit.extra))]
        marked = FreshHit(
            dataclasses.replace(hit.req, headers=headers),
            hit.entry,
            rid=holes[1],
            age=holes[0],
            extra=dict(zip(hit.extra, holes[2:], strict=True)),
        )
        resp = app.hit_answer(marked)
        raw = encode_response(resp, b"", keep_alive=True)
        status = STATUS_LINE[resp.status]
        kept = len(raw) - len(resp.body)
        if headers.whole or resp.status in (204, 304) or kept > ENCODED_HIT_MAX_BYTES:
            return None
        head = raw[len(status) : kept].decode("latin-1").replace("{", "{{").replace("}", "}}")
        for i, hole in enumerate(holes):
            if head.count(hole) != 1:  # the marker text is in a header value from the origin
                return None
            head = head.replace(hole, f"{{{i}}}")
        return cls(tuple(headers.read.items()), tuple(hit.extra), status, head, resp.body)

    def encode(self, hit: FreshHit, default_headers: bytes) -> bytes | None:
        """`hit`'s answer on the wire, or None if this is not an answer for its kind of request
        (or a value would need uvicorn's header check, which `encode_response` makes)."""
        headers = hit.req.headers
        for name, value in self._reads:
            if headers.get(name) != value:
                return None
        if tuple(hit.extra) != self._extra:
            return None
        values = (hit.age, hit.rid, *hit.extra.values())
        if not "".join(values).isprintable():
            return None
        return b"%s%s%s%s" % (
            self._status,
            default_headers,
            self._head.format(*values).encode("latin-1", "replace"),
            self._body,
        )


def _encoded(default_headers: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join(b"%s: %s\r\n" % pair for pair in default_headers)


def hit_first_protocol(edge: ASGIEdge) -> type[HttpToolsProtocol]:
    """uvicorn's `http` protocol class for `edge` (pass it as `uvicorn.run(..., http=...)`)."""
    held_max = edge.app.answerable_body_bytes

    class HitFirstProtocol(HttpToolsProtocol):
        _held: bytearray | None = None  # the body of a request held back from ASGI
        _direct: EdgeRequest | None = None  # a held request handed to `_start_asgi_task`
        # uvicorn's default headers (the date) and their bytes, shared by all connections and
        # re-encoded when uvicorn replaces the list (once a second).
        _defaults: tuple[list[tuple[bytes, bytes]], bytes] = ([], b"")

        _idle_since: float | None = None  # loop time the connection went idle; None: busy

        def on_message_begin(self) -> None:
            # uvicorn's per-request state, except its ASGI scope: a held request may never
            # need one (`_start_cycle` builds it when it does).
            self.url = b""
            self.expect_100_continue = False
            self.headers = []
            self._held = None

        def on_headers_complete(self) -> None:
            if self._holds_back():
                self._held = bytearray()
                return
            self._start_cycle()

        def _start_cycle(self) -> None:
            """uvicorn's scope for this request (built as its `on_message_begin` does, around
            the URL and headers parsed since), then uvicorn's cycle: the ASGI route."""
            url, headers, expect = self.url, self.headers, self.expect_100_continue
            super().on_message_begin()
            self.url, self.headers, self.expect_100_continue = url, headers, expect
            self.scope["headers"] = headers
            super().on_headers_complete()

        # -- keep-alive: one timer per connection, not one per request ---------------------------
        # uvicorn arms a timer after every response and cancels it when the next request
        # arrives: with uvloop about 2.5 us a request, a tenth of a parser hit's own cost. This
        # keeps one timer per connection that, when it fires, closes the connection if it has
        # been idle `timeout_keep_alive` seconds, else looks again when that would be.

        def _unset_keepalive_if_required(self) -> None:
            self._idle_since = None  # a request is in: busy (the timer stays armed)

        def on_response_complete(self) -> None:
            # uvicorn's, with the lazy timer.
            self.server_state.total_requests += 1
            if self.transport.is_closing():
                return
            self.flow.resume_reading()
            if self.pipeline:  # still busy: the next request starts
                cycle, app = self.pipeline.pop()
                self._start_asgi_task(cycle, app)
                return
            self._idle_since = self.loop.time()
            if self.timeout_keep_alive_task is None:
                self._arm_keep_alive(self.timeout_keep_alive)

        def _arm_keep_alive(self, delay: float) -> None:
            self.timeout_keep_alive_task = self.loop.call_later(delay, self._keep_alive_due)

        def _keep_alive_due(self) -> None:
            self.timeout_keep_alive_task = None
            if self.transport.is_closing():
                return
            since = self._idle_since
            if since is None:  # busy with a request: look again a whole timeout later
                self._arm_keep_alive(self.timeout_keep_alive)
                return
            left = since + self.timeout_keep_alive - self.loop.time()
            if left > 0:
                self._arm_keep_alive(left)
            else:
                self.timeout_keep_alive_handler()

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            if self.timeout_keep_alive_task is not None:
                self.timeout_keep_alive_task.cancel()
                self.timeout_keep_alive_task = None

        def _holds_back(self) -> bool:
            parser = self.parser
            if (
                parser.get_method() != b"POST"
                or parser.get_http_version() != "1.1"
                or not parser.should_keep_alive()
                or parser.should_upgrade()
                or self.expect_100_continue
                or self.pipeline
                or (self.cycle is not None and not self.cycle.response_complete)
            ):
                return False
            length = -1
            for name, value in self.headers:
                if name == b"content-length":
                    length = int(value) if value.isdigit() else -1
                elif name == b"transfer-encoding":
                    return False
            return 0 <= length <= held_max

        def on_body(self, body: bytes) -> None:
            if self._held is None:
                super().on_body(body)
            else:
                self._held += body  # bounded: Content-Length <= held_max

        def on_message_complete(self) -> None:
            held = self._held
            if held is None:
                super().on_message_complete()
                return
            self._held = None
            req: EdgeRequest | None = None
            taken: FreshHit | EdgeResponse | None = None
            try:
                req = self._request(bytes(held))
                taken = edge.app.take_hit(req)
            except Exception:  # a bug here must not cost the request: `handle` answers it
                log.exception("answering from the parser failed; handing over")
            if taken is not None:  # counted and limited already: it is answered here, once
                if isinstance(taken, FreshHit):
                    self.transport.write(self._hit_answer(taken))
                else:
                    self.transport.write(self._encode(taken, keep_alive=True))
                self.on_response_complete()  # keep-alive timer, pipelined requests
                return
            # uvicorn's cycle, as it would have started it: it keeps pipelining, shutdown and
            # disconnects working. `_start_asgi_task` runs `handle` for it instead of the ASGI
            # app, unless uvicorn picked another app (its 503 over `limit_concurrency`).
            self._direct = req
            self._start_cycle()
            if self._direct is not None or req is None:  # an ASGI app serves it after all
                self.cycle.body += held  # its task has not run yet: it sees the whole body
            self._direct = None
            super().on_message_complete()

        def _start_asgi_task(self, cycle: RequestResponseCycle, app: object) -> None:
            req = self._direct
            if req is None or app is not self.app:
                super()._start_asgi_task(cycle, app)  # type: ignore[arg-type]
                return
            self._direct = None  # taken
            task = self.loop.create_task(self._serve(cycle, req))
            task.add_done_callback(self.tasks.discard)
            self.tasks.add(task)  # graceful shutdown waits for it, as for ASGI tasks

        async def _serve(self, cycle: RequestResponseCycle, req: EdgeRequest) -> None:
            """`handle` a held request and write the answer as uvicorn's cycle would."""
            resp = await edge.app.handle(req)
            raw = self._encode(resp, cycle.keep_alive)
            if self.flow.write_paused and not cycle.disconnected:
                await self.flow.drain()  # the client is not reading: wait, as uvicorn does
            if cycle.disconnected:
                return
            self.transport.write(raw)
            cycle.response_complete = True
            if not cycle.keep_alive:  # graceful shutdown began meanwhile
                self.transport.close()
            self.on_response_complete()

        def _hit_answer(self, hit: FreshHit) -> bytes:
            """`hit`'s answer from its entry's `EncodedHit` (made on the entry's first hit), or
            built and encoded for this request alone."""
            entry = hit.entry
            try:
                if entry.encoded_hit is None:
                    # False: this entry's answer cannot be kept; not tried again.
                    entry.encoded_hit = EncodedHit.make(edge.app, hit) or False
                if entry.encoded_hit:
                    raw = entry.encoded_hit.encode(hit, self._default_headers())
                    if raw is not None:
                        return raw
            except Exception:  # such as a header value uvicorn refuses: `_encode` answers
                entry.encoded_hit = False
            return self._encode(edge.app.hit_answer(hit), keep_alive=True)

        def _encode(self, resp: EdgeResponse, keep_alive: bool) -> bytes:
            """`resp` on the wire; a 500 problem instead if it cannot be sent, such as a header
            value uvicorn refuses (its ASGI path answers 500 too)."""
            try:
                return encode_response(resp, self._default_headers(), keep_alive)
            except Exception:  # raised from a parser callback it would cost the connection
                rid = resp.headers.get("x-request-id", "")
                log.exception("request_id=%s unsendable response", rid)
                failed = problem(500, "internal", "Internal error.", rid, {"x-request-id": rid})
                return encode_response(failed, self._default_headers(), keep_alive)

        def _request(self, body: bytes) -> EdgeRequest:
            url = httptools.parse_url(self.url)
            path = url.path.decode("ascii")
            if "%" in path:
                path = urllib.parse.unquote(path)
            return edge.request(
                "POST",
                self.root_path + path,
                url.query or b"",
                self.headers,
                body,
                self.client[0] if self.client else "",
                names_lowered=True,  # by uvicorn's `on_header`
            )

        def _default_headers(self) -> bytes:
            current = self.server_state.default_headers
            if HitFirstProtocol._defaults[0] is not current:
                HitFirstProtocol._defaults = (current, _encoded(current))
            return HitFirstProtocol._defaults[1]

    return HitFirstProtocol
