"""The gRPC contract: the committed descriptor is the committed .proto compiled, and its
messages are wire-compatible with the ones tritonclient generates from Triton's proto."""

from __future__ import annotations

import numpy as np
from tritonclient.grpc import service_pb2

from origin.grpc import protocol
from outpost.protogen import MODULE, module_text


def test_committed_descriptor_is_the_proto_compiled() -> None:
    assert MODULE.read_text(encoding="utf-8") == module_text(), (
        "origin/grpc/descriptor.py is out of date: run python -m outpost.protogen"
    )


def test_service_and_methods_are_the_oip_ones() -> None:
    assert protocol.SERVICE.full_name == "inference.GRPCInferenceService"
    assert {m.name for m in protocol.SERVICE.methods} == {
        "ServerLive",
        "ServerReady",
        "ModelReady",
        "ServerMetadata",
        "ModelMetadata",
        "ModelInfer",
    }


def test_messages_cross_the_wire_to_tritonclients_and_back() -> None:
    theirs = service_pb2.ModelInferRequest(model_name="m", model_version="2", id="r")
    tensor = theirs.inputs.add(name="x", datatype="FP32", shape=[1, 2])
    tensor.parameters["binary_data_size"].int64_param = 8
    tensor.parameters["priority"].uint64_param = 3
    tensor.parameters["scale"].double_param = 0.5
    theirs.outputs.add(name="y")
    theirs.raw_input_contents.append(np.ones(2, np.float32).tobytes())
    ours = protocol.ModelInferRequest.FromString(theirs.SerializeToString())
    assert (ours.model_name, ours.model_version, ours.id) == ("m", "2", "r")
    params = ours.inputs[0].parameters
    assert params["priority"].uint64_param == 3 and params["scale"].double_param == 0.5
    assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(
        deterministic=True
    )
    reply = protocol.ModelInferResponse(model_name="m", model_version="2")
    reply.outputs.add(name="y", datatype="INT64", shape=[3])
    reply.raw_output_contents.append(np.arange(3, dtype="<i8").tobytes())
    back = service_pb2.ModelInferResponse.FromString(reply.SerializeToString())
    assert (
        list(back.outputs[0].shape) == [3] and back.raw_output_contents == reply.raw_output_contents
    )
