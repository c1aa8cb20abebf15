"""What the edge reads of a request body (edge/core/body.py) and how it refuses one: JSON,
Triton's binary tensor framing, content codings on OIP infer, and the error member each
protocol's client reads on the edge's own problems. In-process (tests/edge/harness.py)."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import pytest

from tests.edge.conftest import Issuer
from tests.edge.harness import EdgeUnderTest

OIP = "/v2/models/tiny-embed/infer"
JSON_BODY = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["hi"]}]}


@pytest.fixture
def edge(make_edge: Any) -> EdgeUnderTest:
    return make_edge()


@pytest.fixture(scope="module")
def auth(mem_issuer: Issuer) -> dict[str, str]:
    return {"authorization": f"Bearer {mem_issuer.token('ed-1', sub='bodies')}"}


def binary(header: dict[str, Any], raw: bytes) -> tuple[bytes, str]:
    head = json.dumps(header).encode()
    return head + raw, str(len(head))


async def test_a_gzipped_oip_body_is_read_and_keyed_like_the_plain_one(
    edge: EdgeUnderTest, auth: dict[str, str]
) -> None:
    plain = await edge.client.post(OIP, json=JSON_BODY, headers=auth)
    assert plain.headers["x-cache"] == "MISS"
    zipped = await edge.client.post(
        OIP,
        content=gzip.compress(json.dumps(JSON_BODY).encode()),
        headers={**auth, "content-type": "application/json", "content-encoding": "gzip"},
    )
    assert zipped.status_code == 200 and zipped.headers["x-cache"] == "HIT"
    call = edge.origin.inference_calls()[-1]
    assert "content-encoding" not in call.headers  # the only origin call was the plain one


@pytest.mark.parametrize(
    ("framing", "status"),
    [("x", 400), ("-1", 400), ("999999", 400), ("1e3", 400), ("", 400), ("5", 400)],
)
async def test_binary_framing_the_body_cannot_hold_is_400(
    edge: EdgeUnderTest, auth: dict[str, str], framing: str, status: int
) -> None:
    body, _ = binary({"inputs": []}, b"\x00" * 8)
    resp = await edge.client.post(
        OIP, content=body, headers={**auth, "inference-header-content-length": framing}
    )
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]  # the OIP client's error member
    assert edge.origin.inference_calls() == []


async def test_binary_bodies_are_keyed_on_their_bytes(
    edge: EdgeUnderTest, auth: dict[str, str]
) -> None:
    header = {
        "inputs": [
            {"name": "x", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 8}}
        ]
    }
    one, n = binary(header, b"\x00\x00\x80?\x00\x00\x00@")
    other, _ = binary(header, b"\x00\x00\x80?\x00\x00@@")
    headers = {**auth, "inference-header-content-length": n}
    first = await edge.client.post(OIP, content=one, headers=headers)
    again = await edge.client.post(OIP, content=one, headers=headers)
    different = await edge.client.post(OIP, content=other, headers=headers)
    states = [r.headers["x-cache"] for r in (first, again, different)]
    assert states == ["MISS", "HIT", "MISS"]
    assert edge.origin.inference_calls()[0].body == one  # forwarded byte for byte


async def test_content_codings_are_refused_where_the_origin_takes_none(
    edge: EdgeUnderTest, auth: dict[str, str]
) -> None:
    body = gzip.compress(b'{"model": "tiny-embed", "input": "x"}')
    resp = await edge.client.post(
        "/v1/embeddings", content=body, headers={**auth, "content-encoding": "gzip"}
    )
    assert resp.status_code == 415
    assert resp.json()["error"]["type"] == "unsupported-media-type"  # the OpenAI SDK's shape


async def test_a_decompression_bomb_is_413_without_inflating_it_all(
    edge: EdgeUnderTest, auth: dict[str, str]
) -> None:
    bomb = zlib.compress(b"\x00" * (64 << 20), 9)  # 64 MiB of zeros in about 64 KB
    resp = await edge.client.post(
        OIP, content=bomb, headers={**auth, "content-encoding": "deflate"}
    )
    assert resp.status_code == 413


@pytest.mark.parametrize("body", [b"\x1f\x8b\x08garbage", b"not deflate"])
async def test_a_corrupt_coding_is_400(
    edge: EdgeUnderTest, auth: dict[str, str], body: bytes
) -> None:
    resp = await edge.client.post(OIP, content=body, headers={**auth, "content-encoding": "gzip"})
    assert resp.status_code == 400


async def test_each_protocol_gets_the_error_member_its_clients_read(
    edge: EdgeUnderTest,
) -> None:
    oip = (await edge.client.post(OIP, json=JSON_BODY)).json()
    assert oip["status"] == 401 and isinstance(oip["error"], str) and oip["error"]
    openai = (await edge.client.post("/v1/embeddings", json={"input": "x"})).json()
    assert openai["error"] == {"message": openai["detail"], "type": "unauthorized", "param": None}
    own = (await edge.client.get("/nowhere")).json()
    assert "error" not in own and own["status"] == 404


async def test_a_json_string_with_a_lone_surrogate_is_keyed_and_left_to_the_origin(
    edge: EdgeUnderTest, auth: dict[str, str]
) -> None:
    """`"\\ud800"` is valid JSON but no Unicode: the edge keys the body on its bytes (it once
    answered 500 turning it into UTF-8) and forwards it unchanged; the origin judges it."""
    body = b'{"model": "tiny-embed", "input": "\\ud800"}'
    resp = await edge.client.post(
        "/v1/embeddings", content=body, headers={**auth, "content-type": "application/json"}
    )
    assert resp.status_code < 500, resp.text
    assert edge.origin.inference_calls()[-1].body == body
