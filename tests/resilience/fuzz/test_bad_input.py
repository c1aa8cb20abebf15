"""Hand-written hostile inputs, sent to the origin directly and through the edge: each gets a
clear RFC 9457 problem with a 4xx status, never a 5xx, a traceback or a hang."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.resilience.conftest import CLS, EMB, IRIS, Stack

TIERS = ["origin", "edge"]


def target(stack: Stack, tier: str) -> tuple[str, dict[str, str]]:
    if tier == "origin":
        return stack.origins[0].url, {}
    return stack.edge.url, stack.auth()


def assert_problem(resp: httpx.Response, allowed: set[int]) -> dict[str, Any]:
    assert resp.status_code in allowed, (resp.status_code, resp.text[:500])
    assert resp.headers["content-type"].startswith("application/problem+json"), resp.headers
    body = resp.json()
    assert body["status"] == resp.status_code
    assert body["type"].startswith("urn:outpost:problem:")
    assert "Traceback" not in resp.text and 'File "' not in resp.text
    return body


def post(
    http: httpx.Client, stack: Stack, tier: str, path: str, content: bytes, ctype: str
) -> httpx.Response:
    base, headers = target(stack, tier)
    return http.post(base + path, content=content, headers={**headers, "content-type": ctype})


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize(
    ("name", "body", "allowed"),
    [
        ("invalid-utf8", b'{"model": "emb", "input": "\xff\xfe\xfa"}', {400, 422}),
        ("truncated-json", b'{"model": "emb", "input": ', {400}),
        ("not-an-object", b"[1, 2, 3]", {400, 422}),
        ("empty-body", b"", {400, 422}),
        ("deeply-nested", b"[" * 100_000 + b"]" * 100_000, {400, 413, 422}),
        (
            "nested-in-input",
            b'{"model":"emb","input":' + b"[" * 5000 + b"]" * 5000 + b"}",
            {400, 422},
        ),
        ("empty-input-list", b'{"model": "emb", "input": []}', {422}),
        ("input-not-text", b'{"model": "emb", "input": [1, {"a": null}]}', {422}),
        ("nul-and-controls", b'{"model": "emb\\u0000", "input": "x"}', {404, 422}),
        ("wrong-task", b'{"model": "cls", "input": "hello"}', {422}),
        ("unknown-model", b'{"model": "nope", "input": "hello"}', {404}),
    ],
)
def test_malformed_embeddings_bodies_get_a_4xx_problem(
    http: httpx.Client, stack: Stack, tier: str, name: str, body: bytes, allowed: set[int]
) -> None:
    resp = post(http, stack, tier, "/v1/embeddings", body, "application/json")
    assert_problem(resp, allowed)


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", "image/png"])
def test_wrong_content_type_is_415(http: httpx.Client, stack: Stack, tier: str, ctype: str) -> None:
    body = json.dumps({"model": EMB, "input": "hello"}).encode()
    assert_problem(post(http, stack, tier, "/v1/embeddings", body, ctype), {415})


@pytest.mark.parametrize("tier", TIERS)
def test_huge_body_is_413(http: httpx.Client, stack: Stack, tier: str) -> None:
    huge = json.dumps({"model": EMB, "input": "a " * 1_500_000}).encode()  # 3 MB
    assert_problem(post(http, stack, tier, "/v1/embeddings", huge, "application/json"), {413})


@pytest.mark.parametrize("tier", TIERS)
def test_too_many_inputs_is_422(http: httpx.Client, stack: Stack, tier: str) -> None:
    body = json.dumps({"model": CLS, "input": ["hi"] * 500}).encode()
    assert_problem(post(http, stack, tier, "/v1/classifications", body, "application/json"), {422})


def iris_input(http: httpx.Client, stack: Stack) -> dict[str, Any]:
    meta = http.get(f"{stack.origins[0].url}/v2/models/{IRIS}").json()
    return meta["inputs"][0]


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize(
    ("case", "allowed"),
    [
        ("nan", {400, 422}),
        ("infinity", {400, 422}),
        ("wrong-shape", {400, 422}),
        ("shape-data-mismatch", {400, 422}),
        ("negative-shape", {400, 422}),
        ("huge-shape", {400, 413, 422}),
        ("wrong-datatype", {400, 422}),
        ("unknown-datatype", {400, 422}),
        ("strings-for-floats", {400, 422}),
        ("wrong-input-name", {400, 422}),
        ("nested-garbage-data", {400, 422}),
    ],
)
def test_bad_tensors_get_a_4xx_problem(
    http: httpx.Client, stack: Stack, tier: str, case: str, allowed: set[int]
) -> None:
    spec = iris_input(http, stack)
    name, dtype = spec["name"], spec["datatype"]
    good: dict[str, Any] = {"name": name, "shape": [1, 4], "datatype": dtype, "data": [1.0] * 4}
    raw: bytes | None = None
    tensor = dict(good)
    if case == "nan":
        raw = json.dumps({"inputs": [{**good, "data": [float("nan"), 1, 2, 3]}]}).encode()
    elif case == "infinity":
        raw = json.dumps({"inputs": [{**good, "data": [float("inf"), 1, 2, 3]}]}).encode()
    elif case == "wrong-shape":
        tensor.update(shape=[1, 7], data=[1.0] * 7)
    elif case == "shape-data-mismatch":
        tensor.update(shape=[3, 4])
    elif case == "negative-shape":
        tensor.update(shape=[-1, 4])
    elif case == "huge-shape":
        tensor.update(shape=[10**12, 4])
    elif case == "wrong-datatype":
        tensor.update(datatype="INT8", data=[1, 2, 3, 4])
    elif case == "unknown-datatype":
        tensor.update(datatype="COMPLEX1024")
    elif case == "strings-for-floats":
        tensor.update(data=["a", "b", "c", "d"])
    elif case == "wrong-input-name":
        tensor.update(name="../../etc/passwd")
    elif case == "nested-garbage-data":
        tensor.update(data=[[{"x": [1]}], None, True, "s"])
    body = raw if raw is not None else json.dumps({"inputs": [tensor]}).encode()
    resp = post(http, stack, tier, f"/v2/models/{IRIS}/infer", body, "application/json")
    assert_problem(resp, allowed)


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("data", [[1, 2], [None, None], [{"a": 1}, ["x"]], [True, False]], ids=str)
def test_text_model_bytes_input_that_is_not_strings_is_rejected(
    http: httpx.Client, stack: Stack, tier: str, data: list[Any]
) -> None:
    tensor = {"name": "text", "shape": [len(data)], "datatype": "BYTES", "data": data}
    body = json.dumps({"inputs": [tensor]}).encode()
    resp = post(http, stack, tier, f"/v2/models/{EMB}/infer", body, "application/json")
    assert_problem(resp, {400, 422})


@pytest.mark.parametrize("tier", TIERS)
def test_servers_still_answer_after_the_onslaught(
    http: httpx.Client, stack: Stack, tier: str
) -> None:
    base, headers = target(stack, tier)
    resp = http.post(base + "/v1/embeddings", json={"model": EMB, "input": "ok"}, headers=headers)
    assert resp.status_code == 200, resp.text
