"""Every OIP datatype end to end: an echo model (ONNX Identity per datatype) served by a real
origin answers each tensor unchanged through tritonclient over HTTP (binary and JSON) and gRPC."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.origin.conftest import OriginProcess

VALUES: dict[str, np.ndarray] = {
    "BOOL": np.array([[True, False], [False, True]]),
    "UINT8": np.array([[0, 255], [7, 8]], np.uint8),
    "UINT16": np.array([[0, 65535], [7, 8]], np.uint16),
    "UINT32": np.array([[0, 2**32 - 1], [7, 8]], np.uint32),
    "UINT64": np.array([[0, 2**64 - 1], [7, 8]], np.uint64),
    "INT8": np.array([[-128, 127], [7, 8]], np.int8),
    "INT16": np.array([[-(2**15), 2**15 - 1], [7, 8]], np.int16),
    "INT32": np.array([[-(2**31), 2**31 - 1], [7, 8]], np.int32),
    "INT64": np.array([[-(2**63), 2**63 - 1], [7, 8]], np.int64),
    "FP16": np.array([[0.5, -65504], [7, 8]], np.float16),
    "FP32": np.array([[0.1, -3.4e38], [7, 8]], np.float32),
    "FP64": np.array([[0.1, -1e300], [7, 8]], np.float64),
    "BYTES": np.array([["", "héllo"], ["x" * 300, "\u2603"]], dtype=object),
}


def build_echo(dest: Path) -> None:
    """models/echo/1/model.onnx: out_<type> = Identity(in_<type>), shape [-1, 2], per datatype."""
    from onnx import TensorProto, helper

    onnx_types = {
        "BOOL": TensorProto.BOOL,
        "UINT8": TensorProto.UINT8,
        "UINT16": TensorProto.UINT16,
        "UINT32": TensorProto.UINT32,
        "UINT64": TensorProto.UINT64,
        "INT8": TensorProto.INT8,
        "INT16": TensorProto.INT16,
        "INT32": TensorProto.INT32,
        "INT64": TensorProto.INT64,
        "FP16": TensorProto.FLOAT16,
        "FP32": TensorProto.FLOAT,
        "FP64": TensorProto.DOUBLE,
        "BYTES": TensorProto.STRING,
    }
    graph = helper.make_graph(
        [helper.make_node("Identity", [f"in_{d}"], [f"out_{d}"]) for d in onnx_types],
        "echo",
        [helper.make_tensor_value_info(f"in_{d}", t, [-1, 2]) for d, t in onnx_types.items()],
        [helper.make_tensor_value_info(f"out_{d}", t, [-1, 2]) for d, t in onnx_types.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (dest / "1").mkdir(parents=True)
    (dest / "1" / "model.onnx").write_bytes(model.SerializeToString())
    (dest / "model.yaml").write_text("task: tensor\n")


@pytest.fixture(scope="module")
def echo_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OriginProcess]:
    root = tmp_path_factory.mktemp("echo-models")
    build_echo(root / "echo")
    yield from OriginProcess(root, root / "origin.log", grpc=True).serve()


def inputs(module, binary: bool = True) -> list:
    out = []
    for datatype, array in VALUES.items():
        inp = module.InferInput(f"in_{datatype}", list(array.shape), datatype)
        data = np.vectorize(str.encode, otypes=[object])(array) if datatype == "BYTES" else array
        if module is httpclient:
            inp.set_data_from_numpy(data, binary_data=binary)
        else:
            inp.set_data_from_numpy(data)
        out.append(inp)
    return out


def check_echo(result) -> None:
    for datatype, array in VALUES.items():
        got = result.as_numpy(f"out_{datatype}")
        if datatype == "BYTES":
            got = np.vectorize(bytes.decode, otypes=[object])(got)
        assert got.dtype == array.dtype or datatype == "BYTES", datatype
        np.testing.assert_array_equal(got, array, err_msg=datatype)


def test_every_datatype_over_http_binary(echo_origin):
    client = httpclient.InferenceServerClient(echo_origin.url.removeprefix("http://"))
    check_echo(client.infer("echo", inputs(httpclient)))
    client.close()


def test_every_datatype_over_http_json_inputs_and_binary_outputs(echo_origin):
    client = httpclient.InferenceServerClient(echo_origin.url.removeprefix("http://"))
    check_echo(client.infer("echo", inputs(httpclient, binary=False)))
    client.close()


def test_every_datatype_over_grpc(echo_origin):
    client = grpcclient.InferenceServerClient(echo_origin.grpc_target)
    check_echo(client.infer("echo", inputs(grpcclient)))
    client.close()


def test_non_utf8_bytes_for_a_string_tensor_are_refused(echo_origin):
    client = grpcclient.InferenceServerClient(echo_origin.grpc_target)
    sent = inputs(grpcclient)
    bad = grpcclient.InferInput("in_BYTES", [2, 2], "BYTES")
    bad.set_data_from_numpy(np.array([[b"\xff", b"a"], [b"b", b"c"]], dtype=object))
    with pytest.raises(InferenceServerException) as info:
        client.infer("echo", [*sent[:-1], bad])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "element 0 is not valid UTF-8" in info.value.message()
    client.close()
