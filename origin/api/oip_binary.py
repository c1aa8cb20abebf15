"""Tensors as bytes: the binary tensor data extension of OIP v2 REST, and raw gRPC contents.

One encoding serves both transports: little-endian, row-major, no padding; BOOL is one byte (0
or 1); each BYTES element is a 4-byte little-endian unsigned length followed by that many bytes.
Over HTTP (Triton's extension) the JSON header comes first, its length in the
`Inference-Header-Content-Length` header, then each binary input's bytes in the order of the
inputs that declare a `binary_data_size`; gRPC carries one `raw_*_contents` entry per tensor.

Decoding is strict and bounded by the body it reads: anything that stops a tensor from being
decoded (a header length past the end, sizes that overrun or leave bytes over, a BYTES length
that runs past its data, an unknown datatype, a byte count that does not fill the shape) is a
400 `malformed-tensor` / `unknown-datatype` problem naming the tensor. BYTES elements are
returned as `bytes`, so text and images can ride on them alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from origin import strict
from origin.problems import Problem

# OIP datatype -> little-endian numpy dtype (None: known, but not decodable here).
DATATYPES: dict[str, np.dtype | None] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
    "BF16": None,
}
_LENGTH = np.dtype("<u4")


def malformed(detail: str) -> Problem:
    return Problem(400, "malformed-tensor", detail)


def check_datatype(name: str, datatype: str) -> np.dtype:
    """The numpy dtype of an OIP datatype; 400 for unknown or undecodable ones."""
    if datatype not in DATATYPES:
        raise Problem(
            400,
            "unknown-datatype",
            f"input {name!r}: unknown datatype {datatype!r}; OIP datatypes are "
            f"{', '.join(DATATYPES)}",
        )
    dtype = DATATYPES[datatype]
    if dtype is None:
        raise Problem(
            400, "unknown-datatype", f"input {name!r}: datatype {datatype} is not supported here"
        )
    return dtype


def element_count(name: str, shape: Sequence[int]) -> int:
    """Number of elements of `shape`; 400 for negative dimensions."""
    if any(d < 0 for d in shape):
        raise malformed(f"input {name!r}: shape {list(shape)} has a negative dimension")
    return math.prod(shape)


def decode_raw(name: str, datatype: str, shape: Sequence[int], raw: bytes | memoryview) -> Any:
    """Raw tensor bytes -> a flat numpy array (BYTES: an object array of `bytes`)."""
    dtype = check_datatype(name, datatype)
    count = element_count(name, shape)
    if datatype == "BYTES":
        return decode_bytes(name, raw, count)
    expected = count * dtype.itemsize
    if len(raw) != expected:
        raise malformed(
            f"input {name!r}: {len(raw)} bytes of {datatype} data do not fill shape "
            f"{list(shape)} ({expected} bytes)"
        )
    if datatype == "BOOL":
        octets = np.frombuffer(raw, dtype=np.uint8)
        if octets.size and octets.max() > 1:
            raise malformed(f"input {name!r}: BOOL bytes must be 0 or 1")
        return octets.view(np.bool_)
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=False)


def decode_bytes(name: str, raw: bytes | memoryview, count: int) -> Any:
    """`count` length-prefixed BYTES elements filling `raw` exactly."""
    view = memoryview(raw)
    size = len(view)
    if count * 4 > size:
        raise malformed(
            f"input {name!r}: {size} bytes cannot hold {count} BYTES elements "
            "(each needs a 4-byte length)"
        )
    out = np.empty(count, dtype=object)
    offset = 0
    for i in range(count):
        if offset + 4 > size:
            raise malformed(f"input {name!r}: BYTES element {i} has no length prefix")
        length = int(np.frombuffer(view[offset : offset + 4], dtype=_LENGTH)[0])
        offset += 4
        if length > size - offset:
            raise malformed(
                f"input {name!r}: BYTES element {i} says {length} bytes but only "
                f"{size - offset} remain"
            )
        out[i] = bytes(view[offset : offset + length])
        offset += length
    if offset != size:
        raise malformed(
            f"input {name!r}: {size - offset} bytes left over after {count} BYTES elements"
        )
    return out


def encode_bytes(values: Iterable[Any]) -> bytes:
    """BYTES elements (str as UTF-8, or bytes) -> length-prefixed bytes."""
    parts: list[bytes] = []
    for v in values:
        data = v.encode() if isinstance(v, str) else bytes(v)
        parts.append(len(data).to_bytes(4, "little"))
        parts.append(data)
    return b"".join(parts)


def encode_raw(array: np.ndarray) -> tuple[str, bytes]:
    """A numpy array -> (OIP datatype, raw bytes, row-major little-endian)."""
    array = np.asarray(array)
    if array.dtype.kind in "OUS":
        return "BYTES", encode_bytes(array.reshape(-1))
    for datatype, dtype in DATATYPES.items():
        if dtype is not None and dtype.kind != "O" and array.dtype == dtype.newbyteorder("="):
            return datatype, np.ascontiguousarray(array, dtype=dtype).tobytes()
    return "FP32", np.ascontiguousarray(array, dtype="<f4").tobytes()


# ------------------------------------------------------------------------- HTTP framing
def split_body(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    """(JSON header, binary section) of a request body, per `Inference-Header-Content-Length`."""
    if header_length is None:
        return body, memoryview(b"")
    n = strict.size(header_length)
    if n is None:
        raise malformed(
            f"Inference-Header-Content-Length must be a byte count, got {header_length[:20]!r}"
        )
    if n > len(body):
        raise malformed(
            f"Inference-Header-Content-Length is {n} but the body has only {len(body)} bytes"
        )
    return body[:n], memoryview(body)[n:]


def binary_size(name: str, parameters: dict[str, Any] | None) -> int | None:
    """An input's `binary_data_size` parameter (None when absent); 400 when not a byte count."""
    if not parameters or "binary_data_size" not in parameters:
        return None
    size = parameters["binary_data_size"]
    if type(size) is not int or size < 0:
        raise malformed(f"input {name!r}: binary_data_size must be a non-negative integer")
    return size


def take_chunks(
    sizes: Sequence[tuple[str, int | None]], binary: memoryview
) -> list[memoryview | None]:
    """Cut the binary section into one chunk per input that has a size, in order; it must be
    used up exactly (a truncated body or bytes left over are both 400)."""
    chunks: list[memoryview | None] = []
    offset = 0
    for name, size in sizes:
        if size is None:
            chunks.append(None)
            continue
        if size > len(binary) - offset:
            raise malformed(
                f"input {name!r}: binary_data_size {size} runs past the end of the body "
                f"({len(binary) - offset} bytes of binary data left)"
            )
        chunks.append(binary[offset : offset + size])
        offset += size
    if offset != len(binary):
        raise malformed(f"{len(binary) - offset} bytes of binary data follow the last binary input")
    return chunks
