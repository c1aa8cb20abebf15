"""Attacks on the edge's forwarding: rate-limit evasion with spoofed client-IP headers, path
traversal in model names and versions, smuggling-style header tricks, cache poisoning with
client-sent response headers, and CORS misuse."""

from __future__ import annotations

import socket
import uuid

import httpx
import pytest

from tests.edge.conftest import Proc
from tests.resilience.conftest import EMB, EchoOrigin, Stack

SPOOF_HEADERS = ["x-forwarded-for", "x-real-ip", "cf-connecting-ip", "forwarded", "true-client-ip"]


@pytest.mark.parametrize("header", SPOOF_HEADERS)
def test_rotating_client_ip_headers_from_an_untrusted_peer_give_no_fresh_buckets(
    http: httpx.Client, echo_edge: Proc, header: str
) -> None:
    statuses = []
    for i in range(12):
        value = f"203.0.113.{i}" if header != "forwarded" else f"for=203.0.113.{i}"
        # a distinct path variant per header so each test starts from the same bucket state
        resp = http.get(echo_edge.url + "/v2/health/live", headers={header: value})
        statuses.append(resp.status_code)
        if resp.status_code == 429:
            assert int(resp.headers["retry-after"]) >= 1
            assert resp.headers["content-type"].startswith("application/problem+json")
    assert statuses.count(429) >= 12 - 3, statuses


def test_rotating_ip_headers_do_not_reset_a_subjects_bucket(
    http: httpx.Client, echo_edge: Proc, stack: Stack
) -> None:
    headers = stack.auth(sub=f"user-{uuid.uuid4().hex}")
    statuses = []
    for i in range(12):
        resp = http.post(
            echo_edge.url + "/v1/embeddings",
            json={"model": EMB, "input": f"x{i}"},
            headers={**headers, "x-forwarded-for": f"198.51.100.{i}"},
        )
        statuses.append(resp.status_code)
    assert statuses.count(429) >= 12 - 5, statuses


TRAVERSALS = [
    "/v2/models/..%2F..%2F..%2Fetc%2Fpasswd/infer",
    "/v2/models/%2e%2e/infer",
    "/v2/models/%2e%2e%2f%2e%2e%2fetc%2fpasswd/infer",
    "/v2/models/emb/versions/..%2F..%2F1/infer",
    "/v2/models/emb/versions/%2e%2e/infer",
    "/v2/models/emb/versions/-1/infer",
    "/v2/models/emb/versions/1e3/infer",
    "/v2/models//etc/passwd/infer",
    "/v2/models/%2Fetc%2Fpasswd/infer",
    "/v2/models/emb%00.onnx/infer",
    "/v2/models/..%5C..%5Cwindows/infer",
    "/v1/models/..%2F..%2Fetc%2Fpasswd",
    "/v1/models/%2e%2e",
    "/v2/models/emb/versions/1%2F..%2F..%2Fmodel.yaml",
]


@pytest.mark.parametrize("tier", ["origin", "edge"])
@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_in_model_names_and_versions_reads_no_file(
    stack: Stack, tier: str, path: str
) -> None:
    base = stack.origins[0].url if tier == "origin" else stack.edge.url
    headers = {} if tier == "origin" else stack.auth()
    method = "POST" if path.endswith("/infer") else "GET"
    body = b'{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}'
    # raw request: httpx would normalise dot segments away before sending
    with httpx.Client(timeout=30) as c:
        req = c.build_request(
            method,
            base + "/",
            headers={**headers, "content-type": "application/json"},
            content=body if method == "POST" else None,
        )
        req.url = req.url.copy_with(raw_path=path.encode())
        resp = c.send(req)
    assert resp.status_code in {400, 404, 405, 422}, (resp.status_code, resp.text[:300])
    assert "root:" not in resp.text and "task:" not in resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "model", ["../../etc/passwd", "/etc/passwd", "..", "emb/../cls", "emb\x00"]
)
def test_traversal_in_body_model_name_is_unknown_model(
    http: httpx.Client, stack: Stack, model: str
) -> None:
    resp = http.post(
        stack.edge.url + "/v1/embeddings", json={"model": model, "input": "x"}, headers=stack.auth()
    )
    assert resp.status_code in {404, 422}, resp.text
    assert "root:" not in resp.text


HOP_BY_HOP = {
    "connection": "keep-alive, x-secret-hop",
    "x-secret-hop": "must-not-pass",
    "keep-alive": "timeout=5",
    "upgrade": "websocket",
    "te": "trailers",
    "proxy-authorization": "Basic c2VjcmV0OnNlY3JldA==",
    "x-real-ip": "10.0.0.1",
    "cf-connecting-ip": "10.0.0.2",
}


def test_hop_by_hop_and_client_ip_headers_are_not_forwarded(
    http: httpx.Client, echo_edge: Proc, echo_origin: EchoOrigin, stack: Stack
) -> None:
    marker = uuid.uuid4().hex
    resp = http.post(
        echo_edge.url + "/v1/embeddings",
        json={"model": EMB, "input": marker},
        headers={**stack.auth(sub=f"hop-{marker}"), **HOP_BY_HOP, "x-forwarded-for": "6.6.6.6"},
    )
    assert resp.status_code == 200, resp.text
    seen = [r for r in echo_origin.requests if marker.encode() in r["body"]]
    assert len(seen) == 1
    got = seen[0]["headers"]
    for name in ("x-secret-hop", "keep-alive", "upgrade", "te", "proxy-authorization"):
        assert name not in got, (name, got)
    assert got.get("connection", "").lower() in {"", "keep-alive", "close"}
    assert got.get("x-real-ip") is None and got.get("cf-connecting-ip") is None
    # the untrusted peer's spoofed X-Forwarded-For is replaced by the real peer address
    assert got.get("x-forwarded-for") == "127.0.0.1"
    assert "x-request-id" in got


def raw_exchange(url: str, payload: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(payload)
        chunks = []
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
        except TimeoutError:
            pass
    return b"".join(chunks)


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
        b"Content-Length: 4\r\nContent-Length: 60\r\n",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
        b"Transfer-Encoding: xchunked\r\n",
    ],
    ids=["cl-te", "te-cl", "double-cl", "double-te", "bogus-te"],
)
def test_conflicting_framing_never_smuggles_a_request_to_the_origin(
    echo_edge: Proc, echo_origin: EchoOrigin, stack: Stack, framing: bytes
) -> None:
    marker = uuid.uuid4().hex
    token = stack.token(sub=f"smuggle-{marker}")
    smuggled = f"GET /v1/models/{marker} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    body = b"0\r\n\r\n" + smuggled
    request = (
        b"POST /v1/embeddings HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {token}\r\n".encode()
        + framing
        + b"Connection: close\r\n\r\n"
        + body
    )
    answer = raw_exchange(echo_edge.url, request)
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    assert b" 500 " not in answer.split(b"\r\n", 1)[0]
    # the hidden request never reached the origin as a request of its own
    assert not any(marker in r["path"] for r in echo_origin.requests)
    # whatever was forwarded carried consistent framing of its own
    for r in echo_origin.requests:
        assert "transfer-encoding" not in r["headers"] or "content-length" not in r["headers"]


def test_client_sent_cache_and_version_headers_cannot_poison_the_cache(
    http: httpx.Client, stack: Stack
) -> None:
    text = f"poison-{uuid.uuid4().hex}"
    body = {"model": EMB, "input": text}
    evil = {
        "x-model-version": "999",
        "x-model-name": "cls",
        "x-cache": "HIT",
        "cache-control": "max-age=999999",
        "x-forwarded-host": "evil.example",
        "host": "evil.example",
    }
    first = http.post(
        stack.edge.url + "/v1/embeddings", json=body, headers={**stack.auth(), **evil}
    )
    assert first.status_code == 200
    assert first.headers["x-cache"] in {"MISS", "BYPASS"}
    assert first.headers["x-model-version"] == "1" and first.headers["x-model-name"] == EMB
    second = http.post(stack.edge.url + "/v1/embeddings", json=body, headers=stack.auth())
    assert second.status_code == 200
    assert second.headers["x-model-version"] == "1" and second.headers["x-model-name"] == EMB
    assert second.json()["data"] == first.json()["data"]
    assert second.json()["model"] == EMB


def test_cors_disallowed_origin_gets_no_allow_origin(http: httpx.Client, stack: Stack) -> None:
    for evil in ["https://evil.example", "https://app.example.evil.example", "null"]:
        pre = http.options(
            stack.edge.url + "/v1/embeddings",
            headers={"origin": evil, "access-control-request-method": "POST"},
        )
        assert "access-control-allow-origin" not in pre.headers, (evil, pre.headers)
        resp = http.post(
            stack.edge.url + "/v1/embeddings",
            json={"model": EMB, "input": "cors"},
            headers={**stack.auth(), "origin": evil},
        )
        assert "access-control-allow-origin" not in resp.headers
        assert "access-control-allow-credentials" not in resp.headers


def test_cors_allowed_origin_is_echoed_exactly_and_varies(http: httpx.Client, stack: Stack) -> None:
    pre = http.options(
        stack.edge.url + "/v1/embeddings",
        headers={"origin": "https://app.example", "access-control-request-method": "POST"},
    )
    assert pre.headers["access-control-allow-origin"] == "https://app.example"
    assert "origin" in pre.headers.get("vary", "").lower()


def test_cors_wildcard_never_comes_with_credentials(http: httpx.Client, echo_edge: Proc) -> None:
    resp = http.get(echo_edge.url + "/healthz", headers={"origin": "https://any.example"})
    assert resp.headers.get("access-control-allow-origin") == "*"
    assert resp.headers.get("access-control-allow-credentials", "false") != "true"
