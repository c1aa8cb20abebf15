"""Every kind of bad input gets the right 4xx as RFC 9457 problem+json, never a 500."""

from __future__ import annotations

import httpx
import pytest

JSON = {"Content-Type": "application/json"}
LONG_TEXT = " ".join(["word"] * 40)  # > 16 tokens (emb-strict's limit)

CASES = [
    ("malformed JSON", "POST", "/v1/embeddings", b'{"model": "emb", "input": ', JSON, 400),
    ("JSON array body", "POST", "/v1/embeddings", b"[1, 2]", JSON, 400),  # as the edge
    (
        "wrong content type",
        "POST",
        "/v1/embeddings",
        b'{"model":"emb","input":"x"}',
        {"Content-Type": "text/plain"},
        415,
    ),
    ("no content type", "POST", "/v1/embeddings", b'{"model":"emb","input":"x"}', {}, 415),
    (
        "oversized body",
        "POST",
        "/v1/embeddings",
        b'{"model":"emb","input":"' + b"a" * 70_000 + b'"}',
        JSON,
        413,
    ),
    ("too many inputs", "POST", "/v1/embeddings", {"model": "emb", "input": ["x"] * 33}, None, 422),
    ("empty input list", "POST", "/v1/embeddings", {"model": "emb", "input": []}, None, 422),
    ("empty string", "POST", "/v1/embeddings", {"model": "emb", "input": ""}, None, 422),
    (
        "token id outside the vocabulary",
        "POST",
        "/v1/embeddings",
        {"model": "emb", "input": [101, 10**9, 102]},
        None,
        422,
    ),
    ("missing model", "POST", "/v1/embeddings", {"input": "x"}, None, 422),
    (
        "bad encoding_format",
        "POST",
        "/v1/embeddings",
        {"model": "emb", "input": "x", "encoding_format": "hex"},
        None,
        422,
    ),
    ("unknown model", "POST", "/v1/embeddings", {"model": "nope", "input": "x"}, None, 404),
    (
        "unknown model (classify)",
        "POST",
        "/v1/classifications",
        {"model": "nope", "input": "x"},
        None,
        404,
    ),
    (
        "top_k zero",
        "POST",
        "/v1/classifications",
        {"model": "cls", "input": "x", "top_k": 0},
        None,
        422,
    ),
    (
        "too long when truncation=reject",
        "POST",
        "/v1/embeddings",
        {"model": "emb-strict", "input": ["short", LONG_TEXT]},
        None,
        422,
    ),
    (
        "unknown model (OIP)",
        "POST",
        "/v2/models/nope/infer",
        {"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": ["x"]}]},
        None,
        404,
    ),
    (
        "unknown version",
        "POST",
        "/v2/models/emb/versions/9/infer",
        {"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": ["x"]}]},
        None,
        404,
    ),
    ("non-numeric version", "GET", "/v2/models/emb/versions/latest", None, None, 404),
    ("unknown model metadata", "GET", "/v2/models/nope", None, None, 404),
    ("OIP without inputs", "POST", "/v2/models/emb/infer", {"inputs": []}, None, 422),
    (
        "OIP shape mismatch",
        "POST",
        "/v2/models/emb/infer",
        {"inputs": [{"name": "t", "shape": [3], "datatype": "BYTES", "data": ["x"]}]},
        None,
        422,
    ),
    ("unknown route", "GET", "/v1/nothing-here", None, None, 404),
    ("wrong method", "GET", "/v1/embeddings", None, None, 405),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_bad_input_gets_problem_json(client: httpx.Client, method, path, body, headers, status):
    if isinstance(body, dict | list):
        r = client.request(method, path, json=body)
    else:
        r = client.request(method, path, content=body, headers=headers or {})
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["cache-control"] == "no-store"
    problem = r.json()
    assert problem["status"] == status
    assert problem["type"].startswith("urn:outpost:problem:")
    assert problem["title"]
    assert problem["request_id"] == r.headers["x-request-id"]
    assert "Traceback" not in r.text


def test_validation_errors_list_fields_without_echoing_input(client: httpx.Client):
    secret = "do-not-echo-this-value"
    r = client.post("/v1/embeddings", json={"model": "emb", "input": [secret, 5]})
    assert r.status_code == 422
    assert secret not in r.text
    assert any(e["field"] and e["field"].startswith("input") for e in r.json()["errors"])


def test_too_long_input_names_the_offending_index(client: httpx.Client):
    r = client.post("/v1/embeddings", json={"model": "emb-strict", "input": ["ok", LONG_TEXT]})
    assert r.json()["errors"][0]["field"] == "input.1"
    ok = client.post("/v1/embeddings", json={"model": "emb-strict", "input": "short"})
    assert ok.status_code == 200


def test_truncate_mode_accepts_long_input_and_caps_tokens(client: httpx.Client):
    r = client.post("/v1/embeddings", json={"model": "emb", "input": " ".join(["w"] * 500)})
    assert r.status_code == 200
    assert r.json()["usage"]["prompt_tokens"] == 64  # tiny models' max_sequence_length
