"""The edge's HTTP behaviour toward browsers and clients: CORS (allowed origins only),
ETag / If-None-Match on GETs, gzip when accepted (RFC 9110 content negotiation), and the
request id. In-process (tests/edge/harness.py); that the id reaches the real origin's log is in
test_processes.py."""

from __future__ import annotations

import gzip
import json
import uuid
from typing import Any

import httpx
import pytest

from tests.edge.conftest import Issuer
from tests.edge.harness import EdgeUnderTest

ALLOWED = "https://app.example"
DENIED = "https://evil.example"


@pytest.fixture
def edge(make_edge: Any) -> EdgeUnderTest:
    return make_edge({"cors_origins": [ALLOWED], "gzip_min_bytes": 200})


@pytest.fixture(scope="module")
def token(mem_issuer: Issuer) -> str:
    return mem_issuer.token("ed-1", sub="http-user")


# -- CORS ------------------------------------------------------------------------------------------
async def test_allowed_origin_gets_allow_origin_and_exposed_headers(
    edge: EdgeUnderTest, token: str
) -> None:
    r = await edge.embed(token, "cors allowed", headers={"origin": ALLOWED})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == ALLOWED
    assert "origin" in r.headers["vary"].lower()
    exposed = {h.strip() for h in r.headers["access-control-expose-headers"].split(",")}
    wanted = {"x-request-id", "x-cache", "x-model-version", "ratelimit", "ratelimit-policy"}
    assert wanted <= exposed


async def test_preflight_for_an_allowed_origin_is_answered_by_the_edge(edge: EdgeUnderTest) -> None:
    r = await edge.client.options(
        "/v1/embeddings",
        headers={
            "origin": ALLOWED,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type",
        },
    )
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in r.headers["access-control-allow-methods"]
    allowed_headers = r.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed_headers and "content-type" in allowed_headers
    assert int(r.headers["access-control-max-age"]) > 0
    assert r.content == b""


async def test_disallowed_origin_gets_no_cors_headers(edge: EdgeUnderTest, token: str) -> None:
    simple = await edge.embed(token, "cors denied", headers={"origin": DENIED})
    assert simple.status_code == 200  # not a browser check: the answer just lacks ACAO
    assert "access-control-allow-origin" not in simple.headers
    preflight = await edge.client.options(
        "/v1/embeddings",
        headers={"origin": DENIED, "access-control-request-method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-methods" not in preflight.headers


async def test_problem_answers_carry_cors_headers_too(edge: EdgeUnderTest) -> None:
    """A browser app must be able to read a 401 problem, not just see a CORS failure."""
    r = await edge.embed(None, "no token", headers={"origin": ALLOWED})
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["access-control-allow-origin"] == ALLOWED


# -- ETag / If-None-Match --------------------------------------------------------------------------
async def test_get_answers_carry_an_etag_and_revalidate_with_304(
    edge: EdgeUnderTest, token: str
) -> None:
    auth = {"authorization": f"Bearer {token}"}
    first = await edge.client.get("/v1/models", headers=auth)
    assert first.status_code == 200, first.text
    etag = first.headers["etag"]
    assert etag
    again = await edge.client.get("/v1/models", headers={**auth, "if-none-match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert again.headers["x-request-id"]
    listed = await edge.client.get(
        "/v1/models", headers={**auth, "if-none-match": f'"other", {etag}'}
    )
    assert listed.status_code == 304
    stale = await edge.client.get("/v1/models", headers={**auth, "if-none-match": '"stale"'})
    assert stale.status_code == 200
    assert stale.json() == first.json()


async def test_post_answers_are_never_304(edge: EdgeUnderTest, token: str) -> None:
    first = await edge.embed(token, "etag post")
    r = await edge.embed(token, "etag post", headers={"if-none-match": "*"})
    assert first.status_code == r.status_code == 200
    assert r.json() == first.json()


# -- gzip ------------------------------------------------------------------------------------------
async def _raw_post(
    edge: EdgeUnderTest, token: str, text: str, accept_encoding: str
) -> tuple[httpx.Response, bytes]:
    """The answer and its body bytes as sent on the wire (not decoded by httpx)."""
    headers = {"authorization": f"Bearer {token}", "accept-encoding": accept_encoding}
    body = {"model": "tiny-embed", "input": text}
    async with edge.client.stream("POST", "/v1/embeddings", json=body, headers=headers) as r:
        return r, b"".join([chunk async for chunk in r.aiter_raw()])


async def test_gzip_only_when_accepted_and_the_same_json_either_way(
    edge: EdgeUnderTest, token: str
) -> None:
    plain, plain_body = await _raw_post(edge, token, "gzip me", "identity")
    assert plain.status_code == 200
    assert "content-encoding" not in plain.headers
    assert len(plain_body) >= 200  # above gzip_min_bytes, so only Accept-Encoding decides
    for _ in range(2):  # from the cache entry: gzipped once, then reused
        zipped, zipped_body = await _raw_post(edge, token, "gzip me", "gzip, br")
        assert zipped.status_code == 200
        assert zipped.headers["x-cache"] == "HIT"
        assert zipped.headers["content-encoding"] == "gzip"
        assert "accept-encoding" in zipped.headers["vary"].lower()
        assert json.loads(gzip.decompress(zipped_body)) == json.loads(plain_body)
        assert len(zipped_body) < len(plain_body)


async def test_gzip_on_a_miss_too(edge: EdgeUnderTest, token: str) -> None:
    zipped, body = await _raw_post(edge, token, f"gzip miss {uuid.uuid4().hex}", "gzip")
    assert zipped.headers["x-cache"] == "MISS"
    assert zipped.headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(body))["data"]


@pytest.mark.parametrize(
    ("accept_encoding", "gzipped"),
    [
        ("gzip;q=0", False),  # refused explicitly (RFC 9110 §12.5.3)
        ("GZIP", True),  # codings are case-insensitive
        ("identity, *;q=0.5", True),  # any coding
        ("*;q=0, identity", False),
        ("x-gzip", True),  # gzip's registered alias
        ("br", False),
    ],
)
async def test_gzip_follows_accept_encoding_weights(
    edge: EdgeUnderTest, token: str, accept_encoding: str, gzipped: bool
) -> None:
    r, body = await _raw_post(edge, token, "negotiate me", accept_encoding)
    assert r.status_code == 200
    assert ("content-encoding" in r.headers) is gzipped
    # Either way, the representation depended on Accept-Encoding: caches must know.
    assert "accept-encoding" in r.headers["vary"].lower()
    decoded = gzip.decompress(body) if gzipped else body
    assert json.loads(decoded)["data"]


# -- X-Request-ID ----------------------------------------------------------------------------------
async def test_client_request_id_is_echoed_and_forwarded(edge: EdgeUnderTest, token: str) -> None:
    rid = f"trace-{uuid.uuid4().hex}"
    r = await edge.embed(token, f"rid {rid}", headers={"x-request-id": rid})
    assert r.status_code == 200
    assert r.headers["x-request-id"] == rid
    assert edge.origin.inference_calls()[-1].headers["x-request-id"] == rid


async def test_generated_request_id_is_a_uuid4_and_forwarded(
    edge: EdgeUnderTest, token: str
) -> None:
    r = await edge.embed(token, f"rid generated {uuid.uuid4().hex}")
    rid = r.headers["x-request-id"]
    assert uuid.UUID(rid).version == 4
    assert edge.origin.inference_calls()[-1].headers["x-request-id"] == rid


async def test_unusable_request_id_is_replaced_not_forwarded(
    edge: EdgeUnderTest, token: str
) -> None:
    bad = "bad id with spaces " + uuid.uuid4().hex
    r = await edge.embed(token, f"rid bad {uuid.uuid4().hex}", headers={"x-request-id": bad})
    assert r.status_code == 200
    rid = r.headers["x-request-id"]
    assert rid != bad
    assert edge.origin.inference_calls()[-1].headers["x-request-id"] == rid


async def test_a_failure_while_planning_is_a_problem_answer_with_a_request_id(
    make_edge: Any,
) -> None:
    """Whatever goes wrong inside the edge is still one problem+json answer (and a log line
    with its request id), never the server's bare 500 with a traceback to the client."""
    edge = make_edge()

    def broken_plan(req: Any) -> Any:
        raise RuntimeError("a bug")

    edge.app.planner.plan = broken_plan
    resp = await edge.client.get("/v1/models")
    assert resp.status_code == 500
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["request_id"] and "a bug" not in resp.text
