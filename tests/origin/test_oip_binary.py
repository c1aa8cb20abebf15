"""The binary tensor codec (origin.api.oip_binary), in process: every datatype both ways, and
every way a body can lie about its bytes ends in a 400 problem naming the tensor."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.utils as triton_utils

from origin.api.oip_binary import (
    DATATYPES,
    decode_raw,
    encode_bytes,
    encode_raw,
    split_body,
    take_chunks,
)
from origin.problems import Problem

SAMPLES = {
    "BOOL": np.array([True, False, True, True]),
    "UINT8": np.array([0, 7, 255, 1], np.uint8),
    "UINT16": np.array([0, 65535, 2, 3], np.uint16),
    "UINT32": np.array([0, 2**32 - 1, 2, 3], np.uint32),
    "UINT64": np.array([0, 2**64 - 1, 2, 3], np.uint64),
    "INT8": np.array([-128, 127, 0, 1], np.int8),
    "INT16": np.array([-(2**15), 2**15 - 1, 0, 1], np.int16),
    "INT32": np.array([-(2**31), 2**31 - 1, 0, 1], np.int32),
    "INT64": np.array([-(2**63), 2**63 - 1, 0, 1], np.int64),
    "FP16": np.array([0.5, -1.25, 65504, 0], np.float16),
    "FP32": np.array([0.1, -2.5, 3.4e38, 0], np.float32),
    "FP64": np.array([0.1, -2.5, 1e300, 0], np.float64),
    "BYTES": np.array([b"", "héllo".encode(), b"\x00\xff", b"x" * 300], dtype=object),
}


@pytest.mark.parametrize("datatype", sorted(SAMPLES))
def test_every_datatype_round_trips_as_tritonclient_encodes_it(datatype: str) -> None:
    array = SAMPLES[datatype].reshape(2, 2)
    got_type, raw = encode_raw(array)
    assert got_type == datatype
    # tritonclient's own serialisation is the reference for the bytes on the wire
    if datatype == "BYTES":
        assert raw == triton_utils.serialize_byte_tensor(array).item()
    else:
        assert raw == array.tobytes()
    decoded = decode_raw("t", datatype, [2, 2], raw)
    assert decoded.shape == (4,)
    assert list(decoded) == list(array.reshape(-1))


def test_bf16_is_a_known_datatype_answered_as_unsupported() -> None:
    assert "BF16" in DATATYPES
    with pytest.raises(Problem) as info:
        decode_raw("t", "BF16", [1], b"\0\0")
    assert (info.value.status, info.value.slug) == (400, "unknown-datatype")


def malformed(call) -> str:
    with pytest.raises(Problem) as info:
        call()
    assert info.value.status == 400, info.value.detail
    return info.value.detail or ""


def test_tensor_bytes_that_do_not_fit_are_400s_naming_the_tensor() -> None:
    raw = np.arange(4, dtype="<f4").tobytes()
    assert "'x': 15 bytes of FP32" in malformed(lambda: decode_raw("x", "FP32", [4], raw[:-1]))
    assert "'x': 16 bytes of FP32" in malformed(lambda: decode_raw("x", "FP32", [5], raw))
    assert "negative dimension" in malformed(lambda: decode_raw("x", "FP32", [-1, 4], raw))
    assert "unknown datatype 'F32'" in malformed(lambda: decode_raw("x", "F32", [4], raw))
    assert "0 or 1" in malformed(lambda: decode_raw("b", "BOOL", [2], b"\x01\x02"))


def test_bytes_elements_are_strictly_length_prefixed() -> None:
    good = encode_bytes(["ab", b"c"])
    assert list(decode_raw("s", "BYTES", [2], good)) == [b"ab", b"c"]
    assert "says 9 bytes but only 2 remain" in malformed(
        lambda: decode_raw("s", "BYTES", [1], (9).to_bytes(4, "little") + b"ab")
    )
    assert "cannot hold 3 BYTES elements" in malformed(lambda: decode_raw("s", "BYTES", [3], good))
    assert "element 1 has no length prefix" in malformed(
        lambda: decode_raw("s", "BYTES", [2], good[:6] + b"\x01\x00")
    )
    assert "2 bytes left over" in malformed(lambda: decode_raw("s", "BYTES", [2], good + b"zz"))
    # a huge element count never allocates: it is refused against the bytes at hand
    assert "cannot hold" in malformed(lambda: decode_raw("s", "BYTES", [10**12], good))


def test_http_framing_is_checked_against_the_body() -> None:
    body = b'{"inputs": []}' + b"\x00" * 8
    header, binary = split_body(body, "14")
    assert header == b'{"inputs": []}' and bytes(binary) == b"\x00" * 8
    assert split_body(body, None) == (body, memoryview(b""))
    assert "only 22 bytes" in malformed(lambda: split_body(body, "23"))
    for value in ("-1", "1e3", "0x10", "9" * 40, ""):
        assert "must be a byte count" in malformed(lambda v=value: split_body(body, v))
    chunks = take_chunks([("a", 4), ("b", None), ("c", 4)], memoryview(b"12345678"))
    assert [bytes(c) if c is not None else None for c in chunks] == [b"1234", None, b"5678"]
    assert "runs past the end" in malformed(
        lambda: take_chunks([("a", 4), ("c", 5)], memoryview(b"12345678"))
    )
    assert "3 bytes of binary data follow" in malformed(
        lambda: take_chunks([("a", 5)], memoryview(b"12345678"))
    )
