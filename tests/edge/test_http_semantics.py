"""The edge's HTTP behaviour toward browsers and clients: CORS (allowed origins only),
ETag / If-None-Match on GETs, gzip when accepted, and one X-Request-ID from the client through
the edge into the origin's log."""

from __future__ import annotations

import gzip
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.edge.conftest import Issuer, Proc, embed, issuer_settings, start_edge

ALLOWED = "https://app.example"
DENIED = "https://evil.example"


@pytest.fixture(scope="module")
def edge(issuer: Issuer, oidc_issuer: Issuer, shared_origin: Proc, log_dir: Path) -> Iterator[Proc]:
    proc = start_edge(
        {
            "origins": [{"url": shared_origin.url}],
            "issuers": issuer_settings(issuer, oidc_issuer),
            "cors_origins": [ALLOWED],
            "gzip_min_bytes": 200,
        },
        log_dir,
    )
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def token(issuer: Issuer) -> str:
    return issuer.token("ed-1", sub="http-user")


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as c:
        yield c


# -- CORS ------------------------------------------------------------------------------------------
def test_allowed_origin_gets_allow_origin_and_exposed_headers(
    edge: Proc, token: str, client: httpx.Client
) -> None:
    r = embed(client, edge, token, "cors allowed", headers={"origin": ALLOWED})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == ALLOWED
    assert "origin" in r.headers["vary"].lower()
    exposed = {h.strip() for h in r.headers["access-control-expose-headers"].split(",")}
    wanted = {"x-request-id", "x-cache", "x-model-version", "ratelimit", "ratelimit-policy"}
    assert wanted <= exposed


def test_preflight_for_an_allowed_origin_is_answered_by_the_edge(
    edge: Proc, client: httpx.Client
) -> None:
    r = client.options(
        edge.url + "/v1/embeddings",
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


def test_disallowed_origin_gets_no_cors_headers(
    edge: Proc, token: str, client: httpx.Client
) -> None:
    simple = embed(client, edge, token, "cors denied", headers={"origin": DENIED})
    assert simple.status_code == 200  # not a browser check: the answer just lacks ACAO
    assert "access-control-allow-origin" not in simple.headers
    preflight = client.options(
        edge.url + "/v1/embeddings",
        headers={"origin": DENIED, "access-control-request-method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-methods" not in preflight.headers


def test_problem_answers_carry_cors_headers_too(edge: Proc, client: httpx.Client) -> None:
    """A browser app must be able to read a 401 problem, not just see a CORS failure."""
    r = embed(client, edge, None, "no token", headers={"origin": ALLOWED})
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["access-control-allow-origin"] == ALLOWED


# -- ETag / If-None-Match --------------------------------------------------------------------------
def test_get_answers_carry_an_etag_and_revalidate_with_304(
    edge: Proc, token: str, client: httpx.Client
) -> None:
    auth = {"authorization": f"Bearer {token}"}
    first = client.get(edge.url + "/v1/models", headers=auth)
    assert first.status_code == 200, first.text
    etag = first.headers["etag"]
    assert etag
    again = client.get(edge.url + "/v1/models", headers={**auth, "if-none-match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert again.headers["x-request-id"]
    listed = client.get(
        edge.url + "/v1/models", headers={**auth, "if-none-match": f'"other", {etag}'}
    )
    assert listed.status_code == 304
    stale = client.get(edge.url + "/v1/models", headers={**auth, "if-none-match": '"stale"'})
    assert stale.status_code == 200
    assert stale.json() == first.json()


def test_post_answers_are_never_304(edge: Proc, token: str, client: httpx.Client) -> None:
    first = embed(client, edge, token, "etag post")
    r = embed(client, edge, token, "etag post", headers={"if-none-match": "*"})
    assert first.status_code == r.status_code == 200
    assert r.json() == first.json()


# -- gzip ------------------------------------------------------------------------------------------
def _raw_post(
    edge: Proc, token: str, text: str, accept_encoding: str
) -> tuple[httpx.Response, bytes]:
    """The answer and its body bytes as sent on the wire (not decoded by httpx)."""
    headers = {"authorization": f"Bearer {token}", "accept-encoding": accept_encoding}
    body = {"model": "tiny-embed", "input": text}
    with (
        httpx.Client(timeout=30) as c,
        c.stream("POST", edge.url + "/v1/embeddings", json=body, headers=headers) as r,
    ):
        return r, b"".join(r.iter_raw())


def test_gzip_only_when_accepted_and_the_same_json_either_way(edge: Proc, token: str) -> None:
    plain, plain_body = _raw_post(edge, token, "gzip me", "identity")
    assert plain.status_code == 200
    assert "content-encoding" not in plain.headers
    assert len(plain_body) >= 200  # above gzip_min_bytes, so only Accept-Encoding decides
    for _ in range(2):  # from the cache entry: gzipped once, then reused
        zipped, zipped_body = _raw_post(edge, token, "gzip me", "gzip, br")
        assert zipped.status_code == 200
        assert zipped.headers["x-cache"] == "HIT"
        assert zipped.headers["content-encoding"] == "gzip"
        assert "accept-encoding" in zipped.headers["vary"].lower()
        assert json.loads(gzip.decompress(zipped_body)) == json.loads(plain_body)
        assert len(zipped_body) < len(plain_body)


def test_gzip_on_a_miss_too(edge: Proc, token: str) -> None:
    zipped, body = _raw_post(edge, token, f"gzip miss {uuid.uuid4().hex}", "gzip")
    assert zipped.headers["x-cache"] == "MISS"
    assert zipped.headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(body))["data"]


# -- X-Request-ID ----------------------------------------------------------------------------------
def _wait_for_log(proc: Proc, needle: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in proc.log.read_text(errors="replace").splitlines():
            if needle in line:
                return line
        time.sleep(0.05)
    pytest.fail(f"{needle!r} not in {proc.log} within {timeout}s:\n{proc.output()}")


def test_client_request_id_reaches_the_origin_log(
    edge: Proc, shared_origin: Proc, token: str, client: httpx.Client
) -> None:
    rid = f"trace-{uuid.uuid4().hex}"
    r = embed(client, edge, token, f"rid {rid}", headers={"x-request-id": rid})
    assert r.status_code == 200
    assert r.headers["x-request-id"] == rid
    line = _wait_for_log(shared_origin, rid)
    assert "/v1/embeddings" in line


def test_generated_request_id_is_the_one_the_origin_logs(
    edge: Proc, shared_origin: Proc, token: str, client: httpx.Client
) -> None:
    r = embed(client, edge, token, f"rid generated {uuid.uuid4().hex}")
    rid = r.headers["x-request-id"]
    assert uuid.UUID(rid).version == 4
    _wait_for_log(shared_origin, rid)


def test_unusable_request_id_is_replaced_not_forwarded(
    edge: Proc, shared_origin: Proc, token: str, client: httpx.Client
) -> None:
    bad = "bad id with spaces " + uuid.uuid4().hex
    r = embed(client, edge, token, f"rid bad {uuid.uuid4().hex}", headers={"x-request-id": bad})
    assert r.status_code == 200
    rid = r.headers["x-request-id"]
    assert rid != bad
    _wait_for_log(shared_origin, rid)
    assert bad not in shared_origin.log.read_text(errors="replace")
