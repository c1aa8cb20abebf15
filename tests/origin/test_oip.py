"""Open Inference Protocol v2 (KServe v2 REST) against a real origin process."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


def _tensor_request(rows=ROWS, datatype="FP32", shape=None) -> dict:
    flat = [x for r in rows for x in r]
    return {
        "id": "req-1",
        "inputs": [
            {
                "name": "float_input",
                "shape": shape or [len(rows), 4],
                "datatype": datatype,
                "data": flat,
            }
        ],
    }


def test_tensor_model_output_equals_direct_onnxruntime(client: httpx.Client, served_dir: Path):
    r = client.post("/v2/models/iris/infer", json=_tensor_request())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_name"] == "iris" and body["model_version"] == "1"
    assert body["id"] == "req-1"
    assert r.headers["x-model-version"] == "1"
    assert r.headers["cache-control"].startswith("public, max-age=")
    sess = ort.InferenceSession(str(served_dir / "iris" / "1" / "model.onnx"))
    label, probs = sess.run(["label", "probabilities"], {"float_input": np.array(ROWS, np.float32)})
    out = {o["name"]: o for o in body["outputs"]}
    assert out["label"]["datatype"] == "INT64" and out["label"]["shape"] == [3]
    assert out["label"]["data"] == label.tolist()
    assert out["probabilities"]["shape"] == [3, 3]
    np.testing.assert_allclose(out["probabilities"]["data"], probs.reshape(-1), rtol=1e-6)


def test_nested_data_and_requested_outputs(client: httpx.Client):
    req = _tensor_request()
    req["inputs"][0]["data"] = ROWS
    req["outputs"] = [{"name": "probabilities", "parameters": {"binary_data": False}}]
    body = client.post("/v2/models/iris/versions/1/infer", json=req).json()
    assert [o["name"] for o in body["outputs"]] == ["probabilities"]


def test_tensor_wrong_shape_or_datatype_is_rejected(client: httpx.Client):
    cases = [
        _tensor_request(shape=[3, 5]),  # dim 1 must be 4
        _tensor_request(shape=[12]),  # rank must be 2
        _tensor_request(datatype="INT64", rows=[[1, 2, 3, 4]]),
        _tensor_request(shape=[4, 4]),  # 12 values do not fill 16
        {"inputs": [{"name": "nope", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]},
        {
            "inputs": [
                {
                    "name": "float_input",
                    "shape": [1, 4],
                    "datatype": "FP32",
                    "data": ["a", "b", "c", "d"],
                }
            ]
        },
    ]
    for req in cases:
        r = client.post("/v2/models/iris/infer", json=req)
        assert r.status_code == 422, (req, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["request_id"]


def _binary_request(header: dict, blobs: list[bytes], length: int | None = None) -> dict:
    head = json.dumps(header).encode()
    return {
        "content": head + b"".join(blobs),
        "headers": {
            "Inference-Header-Content-Length": str(len(head) if length is None else length)
        },
    }


def _iris_binary(size: int, datatype: str = "FP32") -> dict:
    return {
        "inputs": [
            {
                "name": "float_input",
                "shape": [3, 4],
                "datatype": datatype,
                "parameters": {"binary_data_size": size},
            }
        ],
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
    }


def test_binary_request_and_response_equal_the_json_path(client: httpx.Client):
    raw = np.array(ROWS, dtype="<f4").tobytes()
    r = client.post("/v2/models/iris/infer", **_binary_request(_iris_binary(len(raw)), [raw]))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    n = int(r.headers["inference-header-content-length"])
    header = json.loads(r.content[:n])
    (out,) = header["outputs"]
    assert out["parameters"] == {"binary_data_size": 3 * 3 * 4}
    got = np.frombuffer(r.content[n:], dtype="<f4").reshape(out["shape"])
    ref = client.post("/v2/models/iris/infer", json=_tensor_request()).json()
    want = {o["name"]: o for o in ref["outputs"]}["probabilities"]["data"]
    np.testing.assert_array_equal(got.reshape(-1), np.array(want, dtype=np.float32))
    assert r.headers["x-model-version"] == "1"


def test_json_without_content_type_is_read_as_json(client: httpx.Client):
    body = json.dumps(_tensor_request()).encode()
    r = client.post("/v2/models/iris/infer", content=body)  # no Content-Type, as tritonclient
    assert r.status_code == 200, r.text
    r = client.post("/v2/models/iris/infer", content=body, headers={"Content-Type": "text/csv"})
    assert r.status_code == 415 and "application/octet-stream" in r.json()["error"]


def test_binary_framing_mistakes_are_clear_400s(client: httpx.Client):
    raw = np.array(ROWS, dtype="<f4").tobytes()
    text = {
        "inputs": [
            {
                "name": "text",
                "shape": [2],
                "datatype": "BYTES",
                "parameters": {"binary_data_size": 12},
            }
        ]
    }
    overrun = (50).to_bytes(4, "little") + b"ab" + (1).to_bytes(4, "little") + b"c" + b"\0"
    cases = {
        "truncated body": _binary_request(_iris_binary(len(raw)), [raw[:-5]]),
        "header length past the end": _binary_request(_iris_binary(len(raw)), [raw], 10**6),
        "header length not a number": _binary_request(_iris_binary(len(raw)), [raw], "12x"),
        "bytes left over": _binary_request(_iris_binary(len(raw)), [raw, b"xyz"]),
        "size does not fill the shape": _binary_request(_iris_binary(len(raw) - 4), [raw[:-4]]),
        "unknown datatype": _binary_request(_iris_binary(len(raw), "FP8"), [raw]),
        "negative size": _binary_request(_iris_binary(-1), []),
    }
    for what, request in cases.items():
        r = client.post("/v2/models/iris/infer", **request)
        assert r.status_code == 400, (what, r.text)
        body = r.json()
        assert r.headers["content-type"] == "application/problem+json"
        assert body["error"] == body["detail"] and body["request_id"], what
    r = client.post("/v2/models/emb/infer", **_binary_request(text, [overrun]))
    assert r.status_code == 400 and "element 0 says 50 bytes" in r.json()["error"], r.text


def test_compressed_bodies_are_inflated_within_the_body_limit(client: httpx.Client):
    body = json.dumps(_tensor_request()).encode()
    assert (
        client.post(
            "/v2/models/iris/infer",
            content=gzip.compress(body),
            headers={"Content-Encoding": "gzip"},
        ).status_code
        == 200
    )
    bomb = gzip.compress(b" " * 10_000_000)  # ~10 kB on the wire, 10 MB inflated
    r = client.post("/v2/models/iris/infer", content=bomb, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 413 and "inflated" in r.json()["error"]
    r = client.post("/v2/models/iris/infer", content=body, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 400
    r = client.post("/v2/models/iris/infer", content=body, headers={"Content-Encoding": "br"})
    assert r.status_code == 415


def test_unknown_json_datatype_is_a_400_naming_it(client: httpx.Client):
    r = client.post("/v2/models/iris/infer", json=_tensor_request(datatype="FLOAT"))
    assert r.status_code == 400
    assert "'FLOAT'" in r.json()["error"]


def test_shared_memory_and_classification_extensions_are_refused(client: httpx.Client):
    req = _tensor_request()
    req["inputs"][0]["parameters"] = {"shared_memory_region": "r0"}
    r = client.post("/v2/models/iris/infer", json=req)
    assert r.status_code == 400 and "shared-memory" in r.json()["error"]
    req = _tensor_request()
    req["outputs"] = [{"name": "label", "parameters": {"class_count": 2}}]
    assert client.post("/v2/models/iris/infer", json=req).status_code == 400


def test_unknown_output_name_is_rejected(client: httpx.Client):
    req = _tensor_request()
    req["outputs"] = [{"name": "nope"}]
    assert client.post("/v2/models/iris/infer", json=req).status_code == 422


def test_bytes_input_for_text_models_matches_openai_endpoint(client: httpx.Client):
    texts = ["first sentence", "second one is a bit longer"]
    req = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": texts}]}
    r = client.post("/v2/models/emb/infer", json=req)
    assert r.status_code == 200, r.text
    (out,) = r.json()["outputs"]
    assert out["name"] == "embedding" and out["shape"] == [2, 32]
    ref = client.post("/v1/embeddings", json={"model": "emb", "input": texts}).json()
    np.testing.assert_allclose(
        np.array(out["data"]).reshape(2, 32),
        np.array([d["embedding"] for d in ref["data"]]),
        atol=1e-6,
    )
    # Triton clients often send [n, 1]
    req["inputs"][0]["shape"] = [2, 1]
    assert client.post("/v2/models/emb/infer", json=req).status_code == 200


def test_bytes_input_for_classifier_returns_probabilities_and_label(client: httpx.Client):
    req = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["hm"]}]}
    body = client.post("/v2/models/cls/infer", json=req).json()
    out = {o["name"]: o for o in body["outputs"]}
    assert out["probabilities"]["shape"] == [1, 3]
    assert out["label"]["datatype"] == "BYTES"
    assert out["label"]["data"][0] in {"negative", "neutral", "positive"}


def test_text_model_rejects_numeric_input(client: httpx.Client):
    req = {"inputs": [{"name": "text", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
    assert client.post("/v2/models/emb/infer", json=req).status_code == 422


def test_metadata_endpoints(client: httpx.Client):
    server = client.get("/v2").json()
    assert server["name"] and "version" in server
    assert server["extensions"] == ["binary_tensor_data"]
    meta = client.get("/v2/models/iris").json()
    assert meta["name"] == "iris" and meta["versions"] == ["1"]
    assert meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "float_input", "datatype": "FP32", "shape": [-1, 4]}]
    assert {o["name"] for o in meta["outputs"]} == {"label", "probabilities"}
    emb = client.get("/v2/models/emb/versions/1").json()
    assert emb["inputs"][0]["datatype"] == "BYTES"
    assert emb["outputs"][0] == {"name": "embedding", "datatype": "FP32", "shape": [-1, 32]}
    assert client.get("/v2/models/emb/ready").json() == {"name": "emb", "ready": True}
    assert client.get("/v2/models/emb/versions/1/ready").status_code == 200
    assert client.get("/v2/models/emb/versions/7/ready").status_code == 404


def test_health_live_ready_healthz_and_metrics(client: httpx.Client):
    assert client.get("/v2/health/live").status_code == 200
    r = client.get("/v2/health/ready")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    h = client.get("/healthz").json()
    assert h["ready"] is True and h["models"]["emb"]["status"] == "ready"
    client.post("/v1/embeddings", json={"model": "emb", "input": "metrics"})
    text = client.get("/metrics").text
    for name in (
        "outpost_origin_requests_total",
        "outpost_origin_request_duration_seconds_bucket",
        "outpost_origin_batch_size_bucket",
        "outpost_origin_inference_duration_seconds_bucket",
        "outpost_origin_queue_size",
        "outpost_origin_model_versions",
    ):
        assert name in text, name
    assert 'route="/v1/embeddings"' in text
