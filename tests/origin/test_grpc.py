"""The OIP gRPC service against a real origin process, called through the stubs tritonclient
ships (its own generated messages): typed contents, the error taxonomy as gRPC status codes,
the retry delay on overload, the standard health service and the metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import grpc
import httpx
import numpy as np
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

from tests.origin.conftest import OriginProcess

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], np.float32)


@pytest.fixture(scope="module")
def channel(origin: OriginProcess) -> Iterator[grpc.Channel]:
    assert origin.grpc_target is not None
    with grpc.insecure_channel(origin.grpc_target) as ch:
        yield ch


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> service_pb2_grpc.GRPCInferenceServiceStub:
    return service_pb2_grpc.GRPCInferenceServiceStub(channel)


def iris_request(**input_fields) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name="iris")
    request.inputs.add(name="float_input", datatype="FP32", shape=[2, 4], **input_fields)
    return request


def outputs(response: service_pb2.ModelInferResponse) -> dict[str, np.ndarray]:
    dtypes = {"FP32": "<f4", "INT64": "<i8"}
    return {
        o.name: np.frombuffer(raw, dtype=dtypes[o.datatype]).reshape(o.shape)
        for o, raw in zip(response.outputs, response.raw_output_contents, strict=True)
    }


def test_typed_contents_equal_raw_contents(stub):
    typed = iris_request(contents=service_pb2.InferTensorContents(fp32_contents=ROWS.ravel()))
    raw = iris_request()
    raw.raw_input_contents.append(ROWS.tobytes())
    a, b = outputs(stub.ModelInfer(typed)), outputs(stub.ModelInfer(raw))
    assert a.keys() == {"label", "probabilities"}
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_typed_bytes_contents_for_a_text_model_equal_http_json(stub, client: httpx.Client):
    texts = ["typed bytes", "over grpc"]
    request = service_pb2.ModelInferRequest(model_name="emb", model_version="1")
    request.inputs.add(
        name="text",
        datatype="BYTES",
        shape=[2, 1],
        contents=service_pb2.InferTensorContents(bytes_contents=[t.encode() for t in texts]),
    )
    got = outputs(stub.ModelInfer(request))["embedding"]
    ref = client.post("/v1/embeddings", json={"model": "emb", "input": texts}).json()
    np.testing.assert_allclose(got, [d["embedding"] for d in ref["data"]], atol=1e-6)


def invalid(stub, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value
    return info.value


def test_malformed_tensors_are_invalid_argument_naming_the_problem(stub):
    truncated = iris_request()
    truncated.raw_input_contents.append(ROWS.tobytes()[:-3])
    assert "do not fill shape" in invalid(stub, truncated).details()

    too_many = iris_request()
    too_many.raw_input_contents.extend([ROWS.tobytes(), b"extra"])
    assert "2 entries for 1 inputs" in invalid(stub, too_many).details()

    unknown = iris_request()
    unknown.inputs[0].datatype = "FLOAT32"
    unknown.raw_input_contents.append(ROWS.tobytes())
    assert "unknown datatype 'FLOAT32'" in invalid(stub, unknown).details()

    short = iris_request(contents=service_pb2.InferTensorContents(fp32_contents=[1.0, 2.0]))
    assert "2 values in fp32_contents" in invalid(stub, short).details()

    fp16 = iris_request(contents=service_pb2.InferTensorContents(fp32_contents=ROWS.ravel()))
    fp16.inputs[0].datatype = "FP16"
    assert "only as raw_input_contents" in invalid(stub, fp16).details()

    overrun = service_pb2.ModelInferRequest(model_name="emb")
    overrun.inputs.add(name="text", datatype="BYTES", shape=[1])
    overrun.raw_input_contents.append((99).to_bytes(4, "little") + b"short")
    assert "says 99 bytes" in invalid(stub, overrun).details()

    wrong = iris_request(contents=service_pb2.InferTensorContents(int64_contents=[1] * 8))
    wrong.inputs[0].datatype = "INT64"
    error = invalid(stub, wrong)  # well-formed, but not what the model takes
    assert "must have datatype FP32" in error.details()
    metadata = dict(error.trailing_metadata())
    assert metadata["problem-type"] == "urn:outpost:problem:invalid-tensor"
    assert metadata["x-request-id"]


def test_request_id_from_metadata_is_echoed(stub):
    request = iris_request()
    request.raw_input_contents.append(ROWS.tobytes())
    _, call = stub.ModelInfer.with_call(request, metadata=(("x-request-id", "edge-req-42"),))
    assert dict(call.trailing_metadata())["x-request-id"] == "edge-req-42"


async def test_overload_is_resource_exhausted_with_the_retry_delay(origin: OriginProcess):
    texts = [(" ".join(["overload"] * 50) + f" {i}").encode() for i in range(16)]
    request = service_pb2.ModelInferRequest(model_name="emb-tiny-queue")
    request.inputs.add(name="text", datatype="BYTES", shape=[16])
    request.raw_input_contents.append(b"".join(len(t).to_bytes(4, "little") + t for t in texts))
    async with grpc.aio.insecure_channel(origin.grpc_target) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)

        async def one() -> grpc.aio.AioRpcError | None:
            try:
                await stub.ModelInfer(request)
            except grpc.aio.AioRpcError as exc:
                return exc
            return None

        results = await asyncio.gather(*(one() for _ in range(40)))
        failures = [r for r in results if r is not None]
        assert failures, "a flood against a 16-input queue must be rejected in part"
        assert None in results
        for exc in failures:
            assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc
            metadata = dict(exc.trailing_metadata())
            assert int(metadata["retry-after"]) >= 1
            status = status_pb2.Status.FromString(metadata["grpc-status-details-bin"])
            assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
            retry = error_details_pb2.RetryInfo()
            assert status.details[0].Unpack(retry)
            assert retry.retry_delay.seconds == int(metadata["retry-after"])
        assert await one() is None  # and it recovers


def test_standard_health_service_follows_readiness(channel):
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "inference.GRPCInferenceService"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as info:
        health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_grpc_calls_are_counted(stub, client: httpx.Client):
    stub.ServerLive(service_pb2.ServerLiveRequest())
    text = client.get("/metrics").text
    assert 'outpost_origin_grpc_requests_total{code="OK",method="ServerLive"}' in text
    assert "outpost_origin_grpc_request_duration_seconds_bucket" in text
