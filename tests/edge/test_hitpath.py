"""Small POSTs served without the ASGI adapter (edge.hitpath), in a real uvicorn server against a
real origin: hits answered from the parser, other held requests by `EdgeApp.handle` directly,
both with the same answers as through ASGI, counted and rate-limited the same, in order when
pipelined; every request it does not hold reaches the ASGI app whole."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gzip
import json
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from edge.app import EdgeApp, FreshHit
from edge.asgi import ASGIEdge
from edge.config import from_mapping
from edge.hitpath import EncodedHit, encode_response
from edge.messages import EdgeRequest, EdgeResponse
from edge.runtime.base import CachedResponse
from edge.runtime.local import LocalPlatform
from edge.server import uvicorn_options
from tests.conftest import ServedApp
from tests.edge.conftest import EMBED_MODEL, RATELIMIT, Issuer, Proc

APP_ORIGIN = "https://app.example"

# Headers that differ between any two answers, whichever path: not compared.
PER_REQUEST = {"date", "x-request-id", "age", "ratelimit"}


class CountingApp(EdgeApp):
    """The real edge, counting the requests `handle` answers (through ASGI or directly)."""

    handle_calls = 0

    async def handle(self, req: EdgeRequest) -> EdgeResponse:
        self.handle_calls += 1
        return await super().handle(req)


class CountingEdge(ASGIEdge):
    """The real ASGI adapter, counting the HTTP requests that reach it."""

    app: CountingApp
    http_calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.http_calls += 1
        await super().__call__(scope, receive, send)

    def calls(self) -> tuple[int, int]:
        """(requests through the ASGI adapter, requests answered by `handle`)."""
        return self.http_calls, self.app.handle_calls


class Served:
    def __init__(self, asgi: CountingEdge, port: int) -> None:
        self.asgi = asgi
        self.port = port

    def exchange(self, *requests: bytes) -> list[tuple[int, dict[str, str], bytes]]:
        """Send `requests` in one write (pipelined) on a new connection; their responses."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            sock.sendall(b"".join(requests))
            stream = sock.makefile("rb")
            return [read_response(stream) for _ in requests]


def read_response(stream: Any) -> tuple[int, dict[str, str], bytes]:
    """One final response (a `100 Continue` before it is skipped)."""
    status = 100
    while status < 200:
        status = int(stream.readline().split()[1])
        headers: dict[str, str] = {}
        while (line := stream.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            assert name.lower() not in headers, f"header sent twice: {name}"
            headers[name.lower()] = value.strip()
    return status, headers, stream.read(int(headers["content-length"]))


def post(
    token: str,
    text: str,
    *,
    rid: str = "",
    version: str = "1.1",
    chunked: bool = False,
    extra: str = "",
) -> bytes:
    body = json.dumps({"model": EMBED_MODEL, "input": text}).encode()
    head = (  # header names as clients write them: the edge matches them in any case
        f"POST /v1/embeddings HTTP/{version}\r\nHost: edge\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n{extra}"
    )
    if rid:
        head += f"X-Request-ID: {rid}\r\n"
    if chunked:
        framed = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        return (head + "transfer-encoding: chunked\r\n\r\n").encode() + framed
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


@contextlib.contextmanager
def serve(
    app_class: type[CountingApp], issuer: Issuer, origin: Proc, **uvicorn: Any
) -> Iterator[Served]:
    """The edge served as `python -m edge` serves it (plus `uvicorn` settings), its app built by
    `app_class`."""
    config = from_mapping(
        {
            "origins": [{"url": origin.url}],
            "issuers": [
                {"issuer": issuer.url, "jwks_url": issuer.url + "/keys", "algorithms": ["EdDSA"]}
            ],
            "rate_limits": {"inference": {"rate": 0.001, "burst": 12}},
            "cors_origins": [APP_ORIGIN],
            "gzip_min_bytes": 64,  # the tiny model's answers are small
        }
    )
    platform = LocalPlatform(connect_timeout=config.connect_timeout_seconds)
    asgi = CountingEdge(app_class(config, platform), on_shutdown=platform.aclose)
    with ServedApp(asgi, **uvicorn_options(asgi), **uvicorn) as server:
        yield Served(asgi, server.port)


@pytest.fixture(scope="module")
def served(issuer: Issuer, shared_origin: Proc) -> Iterator[Served]:
    with serve(CountingApp, issuer, shared_origin) as served:
        yield served


KEEP_ALIVE_S = 1.0


class SlowApp(CountingApp):
    """The real edge, taking twice the keep-alive timeout to answer requests that ask it to."""

    async def handle(self, req: EdgeRequest) -> EdgeResponse:
        if b"take your time" in req.body:
            await asyncio.sleep(2 * KEEP_ALIVE_S)
        return await super().handle(req)


@pytest.fixture(scope="module")
def served_keep_alive(issuer: Issuer, shared_origin: Proc) -> Iterator[Served]:
    with serve(SlowApp, issuer, shared_origin, timeout_keep_alive=KEEP_ALIVE_S) as served:
        yield served


def test_a_hit_is_answered_by_the_parser_and_matches_the_asgi_hit(
    served: Served, issuer: Issuer
) -> None:
    token = issuer.token("ed-1", sub="hitpath-same")
    [(s1, miss, body1)] = served.exchange(post(token, "same answer"))
    asgi, handled = served.asgi.calls()
    [(s2, hit, body2)] = served.exchange(post(token, "same answer"))
    assert (s1, miss["x-cache"], s2, hit["x-cache"]) == (200, "MISS", 200, "HIT")
    assert served.asgi.calls() == (asgi, handled), "the hit went through ASGI or handle"
    assert body2 == body1
    # A chunked body is never held back: the same hit, answered through ASGI.
    [(s3, via_asgi, body3)] = served.exchange(post(token, "same answer", chunked=True))
    assert served.asgi.calls() == (asgi + 1, handled + 1)
    assert (s3, via_asgi["x-cache"], body3) == (200, "HIT", body1)
    assert {k: v for k, v in hit.items() if k not in PER_REQUEST} == {
        k: v for k, v in via_asgi.items() if k not in PER_REQUEST
    }
    assert hit.keys() == via_asgi.keys()
    assert int(hit["content-length"]) == len(body2)


def test_each_kind_of_hit_request_gets_its_own_answer_once_one_answer_is_kept(
    served: Served, issuer: Issuer
) -> None:
    token = issuer.token("ed-1", sub="hitpath-kinds")
    entries = served.asgi.app.cache._entries
    keys = set(entries.keys())
    [(_, miss, plain)] = served.exchange(post(token, "kinds"))
    [key] = set(entries.keys()) - keys
    calls = served.asgi.calls()
    kinds = {  # the first hit's answer is the one kept encoded
        "plain": "",
        "gzip": "Accept-Encoding: gzip\r\n",
        "cors": f"Origin: {APP_ORIGIN}\r\n",
        "gzip and cors": f"Accept-Encoding: gzip\r\nOrigin: {APP_ORIGIN}\r\n",
        "plain again": "",
    }
    for i, (kind, extra) in enumerate(kinds.items()):
        [(status, headers, body)] = served.exchange(post(token, "kinds", rid=f"k{i}", extra=extra))
        assert (status, headers["x-cache"], headers["x-request-id"]) == (200, "HIT", f"k{i}"), kind
        zipped = headers.get("content-encoding") == "gzip"
        assert zipped == ("gzip" in kind), kind
        assert (gzip.decompress(body) if zipped else body) == plain, kind
        assert (headers.get("access-control-allow-origin") == APP_ORIGIN) == ("cors" in kind), kind
        # The same as the answer built for this request alone (through ASGI).
        [(_, via_asgi, asgi_body)] = served.exchange(
            post(token, "kinds", extra=extra, chunked=True)
        )
        assert asgi_body == body, kind
        assert {k: v for k, v in headers.items() if k not in PER_REQUEST} == {
            k: v for k, v in via_asgi.items() if k not in PER_REQUEST
        }, kind
    asgi, handled = served.asgi.calls()  # only the chunked requests went through ASGI
    assert (asgi, handled) == (calls[0] + len(kinds), calls[1] + len(kinds))
    assert miss["x-cache"] == "MISS"
    assert isinstance(entries[key].encoded_hit, EncodedHit)  # the plain hit's answer, kept


def test_an_encoded_hit_answer_is_byte_for_byte_the_answer_built_for_its_kind_of_request() -> None:
    """`EncodedHit` against `hit_answer` + `encode_response` on the same hits: the same bytes for
    requests of the kind it was made for, whatever their id, age and rate-limit headers; None
    for any other kind; not made at all for answers it cannot keep."""
    config = from_mapping(
        {"origins": [{"url": "http://127.0.0.1:9"}], "cors_origins": [APP_ORIGIN]}
    )
    app = EdgeApp(config, LocalPlatform())
    now = time.time()

    def entry(**headers: str) -> CachedResponse:
        kept = {"content-type": "application/json", "x-model-name": "m", "x-model-version": "3"}
        body = b'{"data":[' + b"0.125," * 300 + b"1]}"  # gzipped when accepted
        return CachedResponse(200, {**kept, **headers}, body, now - 5, now + 55, now + 120)

    kinds = {
        "plain": {},
        "gzip": {"accept-encoding": "gzip, br"},
        "cors": {"origin": APP_ORIGIN},
        "cors from elsewhere": {"origin": "https://other.example"},
        "gzip and cors": {"origin": APP_ORIGIN, "accept-encoding": "gzip"},
    }

    def hit(cached: CachedResponse, kind: str, rid: str, age: str, left: int) -> FreshHit:
        headers = {"content-type": "application/json", **kinds[kind]}
        req = EdgeRequest("POST", "/v1/embeddings", headers=headers, body=b"{}")
        limits = {"ratelimit-policy": '"inference";q=40;w=2', "ratelimit": f'"x";r={left};t=1'}
        return FreshHit(req, cached, rid, age, limits)

    date = b"date: Wed, 25 Nov 2026 10:00:00 GMT\r\n"
    for made_for in kinds:
        cached = entry(etag='W/"{braces}"')
        encoded = EncodedHit.make(app, hit(cached, made_for, "first", "0", 39))
        assert encoded is not None
        for kind in kinds:
            later = hit(cached, kind, f"id-{len(kind)}", "17", 5)
            if kind == made_for:
                expected = encode_response(app.hit_answer(later), date, keep_alive=True)
                assert encoded.encode(later, date) == expected, (made_for, kind)
                assert b"id-" in expected and b"r=5" in expected and b"age: 17" in expected
            else:
                assert encoded.encode(later, date) is None, (made_for, kind)
    # Answers it does not keep: a head over the bound, a header holding its marker text.
    assert EncodedHit.make(app, hit(entry(etag="x" * 2000), "plain", "a", "0", 1)) is None
    assert EncodedHit.make(app, hit(entry(etag="<<outpost-hole-1>>"), "plain", "a", "0", 1)) is None
    with pytest.raises(ValueError, match="control character"):
        EncodedHit.make(app, hit(entry(etag="bad\x01"), "plain", "a", "0", 1))


def test_pipelined_requests_are_answered_in_order(served: Served, issuer: Issuer) -> None:
    token = issuer.token("ed-1", sub="hitpath-pipeline")
    served.exchange(post(token, "pipelined hit"))  # now cached
    answers = served.exchange(
        post(token, "pipelined hit", rid="one"),
        post(token, "pipelined miss", rid="two"),
        post(token, "pipelined hit", rid="three"),
        post(token, "pipelined miss", rid="four"),
    )
    got = [(status, h["x-request-id"], h["x-cache"]) for status, h, _ in answers]
    assert got == [
        (200, "one", "HIT"),
        (200, "two", "MISS"),
        (200, "three", "HIT"),
        (200, "four", "HIT"),
    ]


def test_requests_it_does_not_hold_reach_asgi_whole(served: Served, issuer: Issuer) -> None:
    token = issuer.token("ed-1", sub="hitpath-fallback")
    served.exchange(post(token, "fallback"))
    long_text = "long " * 1000  # a body past what the parser holds back (4 KiB)
    cases = {
        "HTTP/1.0": (post(token, "fallback", version="1.0"), "HIT"),
        "expect 100-continue": (
            post(token, "fallback", extra="expect: 100-continue\r\n"),
            "HIT",
        ),
        "large body, first": (post(token, long_text), "MISS"),
        "large body, again": (post(token, long_text), "HIT"),
    }
    for name, (raw, expected) in cases.items():
        asgi, handled = served.asgi.calls()
        [(status, headers, body)] = served.exchange(raw)
        assert (status, headers["x-cache"]) == (200, expected), name
        assert served.asgi.calls() == (asgi + 1, handled + 1), f"{name}: not through ASGI"
        assert len(json.loads(body)["data"]) == 1, name


def test_held_requests_that_are_not_hits_go_to_handle_without_asgi(
    served: Served, issuer: Issuer
) -> None:
    token = issuer.token("ed-1", sub="hitpath-direct")
    served.exchange(post(token, "direct"))
    cases = {
        "a new body": (post(token, "direct, new"), "MISS"),
        "client no-cache": (post(token, "direct", extra="cache-control: no-cache\r\n"), "BYPASS"),
    }
    for name, (raw, expected) in cases.items():
        asgi, handled = served.asgi.calls()
        [(status, headers, body)] = served.exchange(raw)
        assert (status, headers["x-cache"]) == (200, expected), name
        assert served.asgi.calls() == (asgi, handled + 1), f"{name}: not straight to handle"
        assert len(json.loads(body)["data"]) == 1, name
        assert int(headers["content-length"]) == len(body), name
    # A miss answered directly carries the same headers as a miss answered through ASGI.
    [(_, direct, _)] = served.exchange(post(token, "direct, compared"))
    [(_, via_asgi, _)] = served.exchange(post(token, "via asgi, compared", chunked=True))
    assert (direct["x-cache"], via_asgi["x-cache"]) == ("MISS", "MISS")
    assert direct.keys() == via_asgi.keys()
    differ = PER_REQUEST | {"content-length"}  # two inputs: two vectors
    assert {k: v for k, v in direct.items() if k not in differ} == {
        k: v for k, v in via_asgi.items() if k not in differ
    }


def test_a_client_gone_before_its_direct_answer_leaves_the_server_serving(
    served: Served, issuer: Issuer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    token = issuer.token("ed-1", sub="hitpath-gone")
    _, handled = served.asgi.calls()
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as sock:
        sock.sendall(post(token, "asked, then gone"))  # a miss: the origin takes a while
    deadline = time.monotonic() + 30
    while served.asgi.calls()[1] == handled:  # handle ran for it all the same
        assert time.monotonic() < deadline, "the abandoned request never reached handle"
        time.sleep(0.01)
    [(status, headers, _)] = served.exchange(post(token, "asked, then gone"))
    assert status == 200 and headers["x-cache"] in ("HIT", "MISS")
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_bad_tokens_and_bodies_on_a_cached_request_get_the_asgi_errors(
    served: Served, issuer: Issuer
) -> None:
    token = issuer.token("ed-1", sub="hitpath-errors")
    served.exchange(post(token, "guarded"))
    [(status, headers, _)] = served.exchange(post(token + "x", "guarded"))
    assert status == 401 and "invalid_token" in headers["www-authenticate"]
    assert headers["content-type"] == "application/problem+json"
    raw = post(token, "guarded").replace(b"application/json", b"text/plain", 1)
    [(status, headers, _)] = served.exchange(raw)
    assert status == 415


def test_parser_hits_take_rate_limit_tokens_and_get_429(served: Served, issuer: Issuer) -> None:
    token = issuer.token("ed-1", sub="hitpath-limited")
    # One connection each: nothing is pipelined, so every hit may be answered by the parser.
    answers = [served.exchange(post(token, "limited"))[0] for _ in range(14)]
    statuses = [status for status, _, _ in answers]
    assert statuses == [200] * 12 + [429] * 2  # burst 12, refilled far too slowly to matter
    remaining = [int(RATELIMIT.fullmatch(h["ratelimit"])[1]) for _, h, _ in answers]
    assert remaining[:12] == list(range(11, -1, -1))
    _, headers, body = answers[-1]
    assert int(headers["retry-after"]) >= 1
    assert json.loads(body)["status"] == 429


def test_answer_now_declines_without_counting_or_limiting(served: Served, issuer: Issuer) -> None:
    app = served.asgi.app
    token = issuer.token("ed-1", sub="hitpath-decline")
    served.exchange(post(token, "declined"))  # token verified, body parsed, answer cached
    before = (copy.deepcopy(app.stats.counters), copy.deepcopy(app.limiter._buckets))

    def request(text: str, **headers: str) -> EdgeRequest:
        return EdgeRequest(
            "POST",
            "/v1/embeddings",
            headers={"authorization": f"Bearer {token}", **headers},
            body=json.dumps({"model": EMBED_MODEL, "input": text}).encode(),
            client_ip="127.0.0.1",
        )

    assert app.answer_now(request("never sent")) is None  # a body not seen before
    assert app.answer_now(request("declined", **{"cache-control": "no-cache"})) is None
    assert app.answer_now(request("declined", authorization="Bearer other")) is None
    assert app.answer_now(request("declined", **{"content-type": "text/plain"})) is None
    assert (app.stats.counters, app.limiter._buckets) == before
    answered = app.answer_now(request("declined"))
    assert answered is not None and answered.headers["x-cache"] == "HIT"
    assert app.stats.counters != before[0]


def test_a_failure_in_take_hit_leaves_the_request_to_handle(
    served: Served, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = issuer.token("ed-1", sub="hitpath-fault")
    served.exchange(post(token, "fault"))

    def broken(req: EdgeRequest) -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(served.asgi.app, "take_hit", broken)
    asgi, handled = served.asgi.calls()
    [(status, headers, _)] = served.exchange(post(token, "fault"))
    assert (status, headers["x-cache"]) == (200, "HIT")
    assert served.asgi.calls() == (asgi, handled + 1)


def test_a_hit_with_an_unsendable_header_is_answered_500_once_by_the_parser(
    served: Served, issuer: Issuer
) -> None:
    app = served.asgi.app
    token = issuer.token("ed-1", sub="hitpath-unsendable")
    keys = set(app.cache._entries.keys())
    served.exchange(post(token, "unsendable"))  # cached now
    [key] = set(app.cache._entries.keys()) - keys
    app.cache._entries[key].headers["x-model-name"] = "broken\x01name"  # uvicorn refuses this

    def total(metric: str) -> int:
        return sum(app.stats.counters[metric].values())

    counted = (total("outpost_edge_requests_total"), total("outpost_edge_cache_total"))
    calls = served.asgi.calls()
    [(status, headers, body)] = served.exchange(post(token, "unsendable", rid="unsendable-1"))
    assert status == 500 and json.loads(body)["status"] == 500
    assert headers["x-request-id"] == "unsendable-1"
    assert served.asgi.calls() == calls  # neither ASGI nor `handle` saw it a second time
    # Counted (and rate-limited) once, as a hit: not again by `handle`.
    assert (total("outpost_edge_requests_total"), total("outpost_edge_cache_total")) == (
        counted[0] + 1,
        counted[1] + 1,
    )


def test_a_connection_busy_more_often_than_the_keep_alive_timeout_stays_open_then_idles_out(
    served_keep_alive: Served, issuer: Issuer
) -> None:
    """One keep-alive timer per connection (edge.hitpath) closes it only once it has been idle
    the whole timeout, however long it was in use before."""
    token = issuer.token("ed-1", sub="hitpath-keep-alive")
    with socket.create_connection(("127.0.0.1", served_keep_alive.port), timeout=30) as sock:
        stream = sock.makefile("rb")
        for _ in range(6):  # half a timeout apart: open three timeouts' worth in all
            sock.sendall(post(token, "kept alive"))
            assert read_response(stream)[0] == 200
            time.sleep(KEEP_ALIVE_S / 2)
        sock.sendall(post(token, "kept alive"))
        assert read_response(stream)[0] == 200
        idle_from = time.monotonic()
        assert stream.read() == b"", "data after the response"  # a server that never closes
        # the connection fails here: the read times out.
        assert time.monotonic() - idle_from >= KEEP_ALIVE_S * 0.9, "closed before the timeout"


def test_a_request_outlasting_the_keep_alive_timeout_keeps_its_connection(
    served_keep_alive: Served, issuer: Issuer
) -> None:
    token = issuer.token("ed-1", sub="hitpath-keep-alive-slow")
    with socket.create_connection(("127.0.0.1", served_keep_alive.port), timeout=30) as sock:
        stream = sock.makefile("rb")
        # The first answer arms the connection's timer; it runs out while the second request
        # is still being answered, which must not close the connection.
        for text in ("before the slow one", "take your time", "after the slow one"):
            sock.sendall(post(token, text))
            status, headers, _ = read_response(stream)
            assert (status, headers.get("connection")) == (200, None), text
