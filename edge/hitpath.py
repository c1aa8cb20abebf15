"""uvicorn's httptools protocol, with fresh cache hits answered from the parser callbacks.

A cache hit needs no I/O, yet through ASGI it costs a task, its events, six message dicts,
uvicorn's per-header checks and two socket writes: more than the edge's own work for the hit
(bench/edge_bench.py). For a POST that may be a hit (a small body with a Content-Length,
keep-alive, nothing pipelined ahead of it) this protocol holds the body back instead of starting
the ASGI cycle, then asks `EdgeApp.answer_now`. A request it does not answer goes to the ASGI app
exactly as uvicorn would have sent it, whole body included, so every other path is unchanged.

This subclasses uvicorn's protocol and leans on its attributes (parser, headers, cycle,
pipeline): the uvicorn version is pinned in pyproject.toml, and tests/edge/test_hitpath.py
runs it in a real uvicorn server.
"""

from __future__ import annotations

import logging
import urllib.parse

import httptools
from uvicorn.protocols.http.httptools_impl import HEADER_VALUE_RE, STATUS_LINE, HttpToolsProtocol

from edge.asgi import ASGIEdge
from edge.messages import EdgeResponse

log = logging.getLogger("edge.hitpath")


def encode_response(resp: EdgeResponse, default_headers: bytes) -> bytes:
    """A whole HTTP/1.1 response as uvicorn writes one (its default headers first, then ours,
    then Content-Length), in one buffer for one socket write."""
    headers = resp.headers
    # uvicorn's own rule for header values (through ASGI it would raise and answer 500).
    if HEADER_VALUE_RE.search("".join(headers.values()).encode("latin-1", "replace")):
        raise ValueError("a response header value holds a control character")
    lines = "".join([f"{k}: {v}\r\n" for k, v in headers.items()])
    return b"%s%s%scontent-length: %d\r\n\r\n%s" % (
        STATUS_LINE[resp.status],
        default_headers,
        lines.encode("latin-1", "replace"),
        len(resp.body),
        resp.body,
    )


def _encoded(default_headers: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join(b"%s: %s\r\n" % pair for pair in default_headers)


def hit_first_protocol(edge: ASGIEdge) -> type[HttpToolsProtocol]:
    """uvicorn's `http` protocol class for `edge` (pass it as `uvicorn.run(..., http=...)`)."""
    held_max = edge.app.answerable_body_bytes

    class HitFirstProtocol(HttpToolsProtocol):
        _held: bytearray | None = None  # the body of a request held back from ASGI
        # uvicorn's default headers (the date) and their bytes, shared by all connections and
        # re-encoded when uvicorn replaces the list (once a second).
        _defaults: tuple[list[tuple[bytes, bytes]], bytes] = ([], b"")

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._held = None

        def on_headers_complete(self) -> None:
            if self._may_answer_now():
                self._held = bytearray()
                return
            super().on_headers_complete()

        def _may_answer_now(self) -> bool:
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
            try:
                raw = self._answer_now(bytes(held))
            except Exception:  # a bug here must not cost the request: ASGI answers it
                log.exception("answering from the parser failed; handing over to ASGI")
                raw = None
            if raw is not None:
                self.transport.write(raw)
                self.on_response_complete()  # keep-alive timer, pipelined requests
                return
            super().on_headers_complete()  # the ASGI cycle, as uvicorn would have started it
            self.cycle.body += held  # its task has not run yet: it sees the whole body
            super().on_message_complete()

        def _answer_now(self, body: bytes) -> bytes | None:
            url = httptools.parse_url(self.url)
            path = url.path.decode("ascii")
            if "%" in path:
                path = urllib.parse.unquote(path)
            req = edge.request(
                "POST",
                self.root_path + path,
                url.query or b"",
                self.headers,
                body,
                self.client[0] if self.client else "",
            )
            resp = edge.app.answer_now(req)
            if resp is None:
                return None
            current = self.server_state.default_headers
            if HitFirstProtocol._defaults[0] is not current:
                HitFirstProtocol._defaults = (current, _encoded(current))
            return encode_response(resp, HitFirstProtocol._defaults[1])

    return HitFirstProtocol
