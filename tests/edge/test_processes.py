"""The edge as it runs: `python -m edge` (uvicorn) in front of a real origin process, with a real
issuer over HTTP. A few end-to-end checks; the edge's behaviour in detail is tested in-process
(test_auth.py, test_cache.py, test_http_semantics.py, test_rate_limit.py)."""

from __future__ import annotations

import gzip
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.edge.conftest import EMBED_MODEL, Issuer, Proc, embed, issuer_settings, start_edge


@pytest.fixture(scope="module")
def edge(issuer: Issuer, oidc_issuer: Issuer, shared_origin: Proc, log_dir: Path) -> Iterator[Proc]:
    proc = start_edge(
        {
            "origins": [{"url": shared_origin.url}],
            "issuers": issuer_settings(issuer, oidc_issuer),
            "gzip_min_bytes": 200,
        },
        log_dir,
    )
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def token(issuer: Issuer) -> str:
    return issuer.token("ed-1", sub="process-user")


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as c:
        yield c


def test_authenticated_inference_is_forwarded_cached_and_gzipped(
    edge: Proc, token: str, oidc_issuer: Issuer, client: httpx.Client
) -> None:
    assert embed(client, edge, None, "process").status_code == 401
    first = embed(client, edge, token, "process")
    assert first.status_code == 200, first.text
    assert (first.headers["x-cache"], first.headers["x-model-name"]) == ("MISS", EMBED_MODEL)
    second = embed(client, edge, token, "process", headers={"accept-encoding": "gzip"})
    assert second.headers["x-cache"] == "HIT"
    assert second.headers["content-encoding"] == "gzip"
    assert second.json() == first.json()
    for kid in ("es-1", "rs-1"):  # found by OIDC discovery over HTTP
        assert embed(client, edge, oidc_issuer.token(kid), "process").status_code == 200


def test_a_percent_encoded_path_is_routed_in_its_normal_form(
    edge: Proc, token: str, client: httpx.Client
) -> None:
    """`/v2/models/tiny-%65mbed/infer` is `/v2/models/tiny-embed/infer` (an escaped unreserved
    character), while an escaped slash stays data and names no route."""
    body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["hi"]}]}
    auth = {"authorization": f"Bearer {token}"}
    plain = client.post(edge.url + f"/v2/models/{EMBED_MODEL}/infer", json=body, headers=auth)
    escaped = client.post(edge.url + "/v2/models/tiny-%65mbed/infer", json=body, headers=auth)
    assert plain.status_code == escaped.status_code == 200, escaped.text
    assert escaped.headers["x-cache"] == "HIT"
    assert escaped.json() == plain.json()
    slash = client.post(edge.url + "/v2/models/tiny%2Fembed/infer", json=body, headers=auth)
    assert slash.status_code == 404


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


def test_a_gzip_answer_from_the_server_decodes_to_the_plain_one(edge: Proc, token: str) -> None:
    headers = {"authorization": f"Bearer {token}"}
    body = {"model": EMBED_MODEL, "input": "wire gzip"}
    with httpx.Client(timeout=30) as c:
        plain = c.post(edge.url + "/v1/embeddings", json=body, headers=headers)
        with c.stream(
            "POST",
            edge.url + "/v1/embeddings",
            json=body,
            headers={**headers, "accept-encoding": "gzip"},
        ) as r:
            raw = b"".join(r.iter_raw())
            assert r.headers["content-encoding"] == "gzip"
            assert int(r.headers["content-length"]) == len(raw)
    assert json.loads(gzip.decompress(raw)) == plain.json()
