"""OIP v2 REST through a real edge process, as Triton's client speaks it (no Content-Type,
binary tensors both ways): results equal the JSON path's, a binary request sent twice is a cache
hit the second time (the key is the body's bytes), compression only when the client accepts it,
and every error readable by tritonclient's InferenceServerException."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.edge.conftest import (
    EMBED_MODEL,
    Issuer,
    Proc,
    issuer_settings,
    start_edge,
    start_origin,
)

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]], np.float32)


@pytest.fixture(scope="module")
def oip_origin(built_models: Path, tmp_path_factory: pytest.TempPathFactory, log_dir: Path):
    import shutil

    from outpost.modelkit.tiny import build_tiny_tensor

    root = tmp_path_factory.mktemp("oip-edge-models")
    shutil.copytree(built_models / EMBED_MODEL, root / EMBED_MODEL)
    build_tiny_tensor(root / "iris", version=1)
    proc = start_origin(root, log_dir)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def edge(issuer: Issuer, oidc_issuer: Issuer, oip_origin: Proc, log_dir: Path) -> Iterator[Proc]:
    proc = start_edge(
        {
            "origins": [{"url": oip_origin.url}],
            "issuers": issuer_settings(issuer, oidc_issuer),
            "gzip_min_bytes": 64,
        },
        log_dir,
    )
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def auth(issuer: Issuer) -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.token('ed-1', sub='oip-user')}"}


@pytest.fixture(scope="module")
def triton(edge: Proc) -> Iterator[httpclient.InferenceServerClient]:
    client = httpclient.InferenceServerClient(edge.url.removeprefix("http://"))
    yield client
    client.close()


def json_path(edge: Proc, auth: dict[str, str], rows: np.ndarray) -> dict[str, np.ndarray]:
    """The plain JSON OIP call through the edge: the reference."""
    body = {
        "inputs": [
            {
                "name": "float_input",
                "shape": list(rows.shape),
                "datatype": "FP32",
                "data": rows.reshape(-1).tolist(),
            }
        ]
    }
    r = httpx.post(edge.url + "/v2/models/iris/infer", json=body, headers=auth, timeout=30)
    assert r.status_code == 200, r.text
    return {o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in r.json()["outputs"]}


def binary_body(rows: np.ndarray) -> tuple[bytes, dict[str, str]]:
    """What tritonclient sends by default: JSON header + raw FP32, no Content-Type."""
    raw = rows.astype("<f4").tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "float_input",
                    "shape": list(rows.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    return header + raw, {"Inference-Header-Content-Length": str(len(header))}


def decode(response: httpx.Response) -> dict[str, np.ndarray]:
    n = int(response.headers["inference-header-content-length"])
    header = json.loads(response.content[:n])
    out, offset = {}, n
    for o in header["outputs"]:
        size = o["parameters"]["binary_data_size"]
        dtype = {"FP32": "<f4", "INT64": "<i8"}[o["datatype"]]
        out[o["name"]] = np.frombuffer(response.content[offset : offset + size], dtype).reshape(
            o["shape"]
        )
        offset += size
    return out


def test_tritonclient_through_the_edge_equals_the_json_path(triton, edge, auth):
    inp = httpclient.InferInput("float_input", list(ROWS.shape), "FP32")
    inp.set_data_from_numpy(ROWS)
    result = triton.infer("iris", [inp], headers=dict(auth))
    ref = json_path(edge, auth, ROWS)
    np.testing.assert_array_equal(
        result.as_numpy("probabilities"), ref["probabilities"].astype(np.float32)
    )
    np.testing.assert_array_equal(result.as_numpy("label"), ref["label"])
    assert triton.is_model_ready("iris", headers=dict(auth))
    assert (
        triton.get_model_metadata("iris", headers=dict(auth))["inputs"][0]["name"] == "float_input"
    )


def test_a_binary_request_sent_twice_is_a_cache_hit(edge, auth):
    body, headers = binary_body(ROWS[:2])
    headers = {**auth, **headers, "Accept-Encoding": "identity"}
    with httpx.Client(timeout=30) as client:
        first = client.post(edge.url + "/v2/models/iris/infer", content=body, headers=headers)
        second = client.post(edge.url + "/v2/models/iris/infer", content=body, headers=headers)
        other_body, _ = binary_body(ROWS[1:])  # same shape, other bytes: another key
        other = client.post(edge.url + "/v2/models/iris/infer", content=other_body, headers=headers)
    assert first.status_code == 200, first.text
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert other.headers["x-cache"] == "MISS"
    assert second.content == first.content
    assert (
        second.headers["inference-header-content-length"]
        == first.headers["inference-header-content-length"]
    )
    assert "content-encoding" not in second.headers  # identity was asked for
    got, ref = decode(second), json_path(edge, auth, ROWS[:2])
    np.testing.assert_array_equal(got["probabilities"], ref["probabilities"].astype(np.float32))


def test_compressed_only_when_the_client_accepts_it(triton, edge, auth):
    inp = httpclient.InferInput("float_input", list(ROWS.shape), "FP32")
    inp.set_data_from_numpy(ROWS)
    out = httpclient.InferRequestedOutput("probabilities", binary_data=False)  # a JSON answer
    result = triton.infer(
        "iris", [inp], outputs=[out], headers=dict(auth), response_compression_algorithm="gzip"
    )
    ref = json_path(edge, auth, ROWS)
    np.testing.assert_allclose(result.as_numpy("probabilities"), ref["probabilities"], rtol=1e-6)
    body, headers = binary_body(ROWS)
    with httpx.Client(timeout=30) as client:
        for accept in ("gzip", "identity"):
            r = client.post(
                edge.url + "/v2/models/iris/infer",
                content=body,
                headers={**auth, **headers, "Accept-Encoding": accept},
            )
            assert r.status_code == 200, r.text
            encoding = r.headers.get("content-encoding")
            assert encoding in ({"gzip", None} if accept == "gzip" else {None}), (accept, encoding)
            raw = (
                gzip.decompress(r.content)
                if encoding == "gzip" and r.content[:2] == b"\x1f\x8b"
                else r.content
            )
            assert int(r.headers["inference-header-content-length"]) < len(raw)


def test_errors_through_the_edge_reach_tritonclients_exception(triton, auth):
    inp = httpclient.InferInput("float_input", list(ROWS.shape), "FP32")
    inp.set_data_from_numpy(ROWS)
    with pytest.raises(InferenceServerException) as info:
        triton.infer("no-such-model", [inp], headers=dict(auth))
    assert info.value.status() == "404" and "does not exist" in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        triton.infer("iris", [inp])  # no token: the edge's own problem
    assert info.value.status() == "401"
    assert info.value.message() and "exception occurred in the client" not in info.value.message()
    truncated = httpclient.InferInput("float_input", [3, 3], "FP32")
    truncated.set_data_from_numpy(ROWS[:, :3].copy())
    truncated._shape = [3, 4]  # the header says [3, 4]; 36 bytes follow
    with pytest.raises(InferenceServerException) as info:
        triton.infer("iris", [truncated], headers=dict(auth))
    assert info.value.status() == "400" and "do not fill shape" in info.value.message()
