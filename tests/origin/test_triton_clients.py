"""Triton's own clients, with their defaults, against a real origin process: tritonclient[http]
(JSON without a Content-Type, binary tensors both ways) and tritonclient[grpc] (raw contents).
Results must equal the plain JSON OIP call's, and every error must come back through the
client's own InferenceServerException with the right status."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.origin.conftest import OriginProcess

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]], np.float32)
TEXTS = ["first sentence", "the second one is a bit longer", "ünïcödé tëxt"]


@pytest.fixture(scope="module")
def http_client(origin: OriginProcess) -> Iterator[httpclient.InferenceServerClient]:
    client = httpclient.InferenceServerClient(origin.url.removeprefix("http://"))
    yield client
    client.close()


@pytest.fixture(scope="module")
def grpc_client(origin: OriginProcess) -> Iterator[grpcclient.InferenceServerClient]:
    assert origin.grpc_target is not None
    client = grpcclient.InferenceServerClient(origin.grpc_target)
    yield client
    client.close()


def json_outputs(client: httpx.Client, model: str, inputs: list[dict]) -> dict[str, np.ndarray]:
    """The plain JSON OIP call: the reference every client's result must equal."""
    r = client.post(f"/v2/models/{model}/infer", json={"inputs": inputs})
    assert r.status_code == 200, r.text
    return {
        o["name"]: np.array(o["data"], dtype=object if o["datatype"] == "BYTES" else None).reshape(
            o["shape"]
        )
        for o in r.json()["outputs"]
    }


def iris_json(client: httpx.Client) -> dict[str, np.ndarray]:
    data = ROWS.reshape(-1).tolist()
    return json_outputs(
        client, "iris", [{"name": "float_input", "shape": [3, 4], "datatype": "FP32", "data": data}]
    )


def text_json(client: httpx.Client, model: str) -> dict[str, np.ndarray]:
    return json_outputs(
        client, model, [{"name": "text", "shape": [3], "datatype": "BYTES", "data": TEXTS}]
    )


def text_array() -> np.ndarray:
    return np.array([t.encode() for t in TEXTS], dtype=object)


# ------------------------------------------------------------------------------------- HTTP
def tensor_input(module, name: str, array: np.ndarray, datatype: str):
    inp = module.InferInput(name, list(array.shape), datatype)
    inp.set_data_from_numpy(array)  # binary_data=True by default in both clients
    return inp


def test_http_client_tensor_model_equals_the_json_path(http_client, client):
    result = http_client.infer("iris", [tensor_input(httpclient, "float_input", ROWS, "FP32")])
    ref = iris_json(client)
    np.testing.assert_array_equal(
        result.as_numpy("probabilities"), ref["probabilities"].astype(np.float32)
    )
    np.testing.assert_array_equal(result.as_numpy("label"), ref["label"].astype(np.int64))
    response = result.get_response()
    assert response["model_name"] == "iris" and response["model_version"] == "1"
    # outputs came back as binary data, as the client asked by default
    assert all(o["parameters"]["binary_data_size"] > 0 for o in response["outputs"])


def test_http_client_json_tensors_and_requested_outputs(http_client, client):
    inp = httpclient.InferInput("float_input", [3, 4], "FP32")
    inp.set_data_from_numpy(ROWS, binary_data=False)
    out = httpclient.InferRequestedOutput("probabilities", binary_data=False)
    result = http_client.infer("iris", [inp], outputs=[out], request_id="r-7")
    assert [o["name"] for o in result.get_response()["outputs"]] == ["probabilities"]
    assert result.get_response()["id"] == "r-7"
    np.testing.assert_array_equal(
        result.as_numpy("probabilities"), iris_json(client)["probabilities"].astype(np.float32)
    )


def test_http_client_compressed_requests_and_answers(http_client, client):
    ref = iris_json(client)
    for algorithm in ("gzip", "deflate"):
        result = http_client.infer(
            "iris",
            [tensor_input(httpclient, "float_input", ROWS, "FP32")],
            request_compression_algorithm=algorithm,
            response_compression_algorithm=algorithm,
        )
        np.testing.assert_array_equal(
            result.as_numpy("probabilities"), ref["probabilities"].astype(np.float32)
        )


def test_http_client_bytes_in_and_out_for_text_models(http_client, client):
    result = http_client.infer("emb", [tensor_input(httpclient, "text", text_array(), "BYTES")])
    np.testing.assert_allclose(
        result.as_numpy("embedding"),
        text_json(client, "emb")["embedding"].astype(np.float32),
        atol=1e-6,
    )
    result = http_client.infer("cls", [tensor_input(httpclient, "text", text_array(), "BYTES")])
    labels = [x.decode() for x in result.as_numpy("label")]
    assert labels == list(text_json(client, "cls")["label"])


def test_http_client_metadata_and_readiness(http_client):
    assert http_client.is_server_live() and http_client.is_server_ready()
    assert http_client.is_model_ready("iris") and http_client.is_model_ready("emb", "1")
    assert not http_client.is_model_ready("no-such-model")
    meta = http_client.get_model_metadata("iris")
    assert meta["inputs"] == [{"name": "float_input", "datatype": "FP32", "shape": [-1, 4]}]
    assert "binary_tensor_data" in http_client.get_server_metadata()["extensions"]


def test_http_client_reads_every_error(http_client):
    cases = [
        (
            "no-such-model",
            [tensor_input(httpclient, "float_input", ROWS, "FP32")],
            "404",
            "does not exist",
        ),
        (
            "iris",
            [tensor_input(httpclient, "float_input", ROWS[:, :3].copy(), "FP32")],
            "422",
            "shape",
        ),
        ("iris", [tensor_input(httpclient, "wrong_name", ROWS, "FP32")], "422", "float_input"),
        ("emb", [tensor_input(httpclient, "text", ROWS, "FP32")], "422", "BYTES"),
    ]
    for model, inputs, status, words in cases:
        with pytest.raises(InferenceServerException) as info:
            http_client.infer(model, inputs)
        assert info.value.status() == status, info.value
        assert words in info.value.message(), info.value
    with pytest.raises(InferenceServerException) as info:
        http_client.infer(
            "iris", [tensor_input(httpclient, "float_input", ROWS, "FP32")], model_version="9"
        )
    assert info.value.status() == "404"
    with pytest.raises(InferenceServerException) as info:
        http_client.get_model_metadata("no-such-model")
    assert info.value.status() == "404" and "does not exist" in info.value.message()
    big = np.zeros((5000, 4), np.float32)  # 80 kB over the fixture's 64 kB body limit
    with pytest.raises(InferenceServerException) as info:
        http_client.infer("iris", [tensor_input(httpclient, "float_input", big, "FP32")])
    assert info.value.status() == "413"


# ------------------------------------------------------------------------------------- gRPC
def test_grpc_client_tensor_model_equals_the_json_path(grpc_client, client):
    result = grpc_client.infer(
        "iris", [tensor_input(grpcclient, "float_input", ROWS, "FP32")], request_id="g-1"
    )
    ref = iris_json(client)
    np.testing.assert_array_equal(
        result.as_numpy("probabilities"), ref["probabilities"].astype(np.float32)
    )
    np.testing.assert_array_equal(result.as_numpy("label"), ref["label"].astype(np.int64))
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == ("iris", "1", "g-1")
    assert len(response.raw_output_contents) == 2


def test_grpc_client_bytes_in_and_out_for_text_models(grpc_client, client):
    result = grpc_client.infer("emb", [tensor_input(grpcclient, "text", text_array(), "BYTES")])
    np.testing.assert_allclose(
        result.as_numpy("embedding"),
        text_json(client, "emb")["embedding"].astype(np.float32),
        atol=1e-6,
    )
    out = grpcclient.InferRequestedOutput("label")
    result = grpc_client.infer(
        "cls", [tensor_input(grpcclient, "text", text_array(), "BYTES")], outputs=[out]
    )
    assert [x.decode() for x in result.as_numpy("label")] == list(text_json(client, "cls")["label"])
    assert result.as_numpy("probabilities") is None  # only what was asked for


def test_grpc_client_metadata_and_readiness(grpc_client):
    assert grpc_client.is_server_live() and grpc_client.is_server_ready()
    assert grpc_client.is_model_ready("iris") and grpc_client.is_model_ready("emb", "1")
    meta = grpc_client.get_model_metadata("iris", as_json=True)
    assert meta["name"] == "iris" and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "float_input", "datatype": "FP32", "shape": ["-1", "4"]}]
    server = grpc_client.get_server_metadata(as_json=True)
    assert server["name"] == "outpost-origin" and "binary_tensor_data" in server["extensions"]


def test_grpc_client_reads_every_error(grpc_client):
    ok = [tensor_input(grpcclient, "float_input", ROWS, "FP32")]
    cases = [
        (lambda: grpc_client.infer("no-such-model", ok), "NOT_FOUND", "does not exist"),
        (lambda: grpc_client.infer("iris", ok, model_version="9"), "NOT_FOUND", "no version 9"),
        (
            lambda: grpc_client.infer(
                "iris", [tensor_input(grpcclient, "float_input", ROWS[:, :3].copy(), "FP32")]
            ),
            "INVALID_ARGUMENT",
            "shape",
        ),
        (lambda: grpc_client.is_model_ready("no-such-model"), "NOT_FOUND", "does not exist"),
        (lambda: grpc_client.get_model_metadata("no-such-model"), "NOT_FOUND", "does not exist"),
        (
            # 80 kB over the 64 kB message limit: refused by gRPC itself, never a hang
            lambda: grpc_client.infer(
                "iris",
                [tensor_input(grpcclient, "float_input", np.zeros((5000, 4), np.float32), "FP32")],
            ),
            "RESOURCE_EXHAUSTED",
            "larger than max",
        ),
    ]
    for call, code, words in cases:
        with pytest.raises(InferenceServerException) as info:
            call()
        assert info.value.status() == f"StatusCode.{code}", info.value
        assert words in info.value.message(), info.value
