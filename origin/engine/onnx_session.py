"""onnxruntime sessions tuned for CPU serving, plus OIP <-> numpy datatype mapping."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from origin.repository.config import OnnxConfig

_OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}

# ONNX type strings (as onnxruntime reports them) -> (OIP datatype, numpy dtype)
ONNX_TYPES: dict[str, tuple[str, np.dtype]] = {
    "tensor(bool)": ("BOOL", np.dtype(np.bool_)),
    "tensor(uint8)": ("UINT8", np.dtype(np.uint8)),
    "tensor(uint16)": ("UINT16", np.dtype(np.uint16)),
    "tensor(uint32)": ("UINT32", np.dtype(np.uint32)),
    "tensor(uint64)": ("UINT64", np.dtype(np.uint64)),
    "tensor(int8)": ("INT8", np.dtype(np.int8)),
    "tensor(int16)": ("INT16", np.dtype(np.int16)),
    "tensor(int32)": ("INT32", np.dtype(np.int32)),
    "tensor(int64)": ("INT64", np.dtype(np.int64)),
    "tensor(float16)": ("FP16", np.dtype(np.float16)),
    "tensor(float)": ("FP32", np.dtype(np.float32)),
    "tensor(double)": ("FP64", np.dtype(np.float64)),
    "tensor(string)": ("BYTES", np.dtype(object)),
}
OIP_TO_NUMPY: dict[str, np.dtype] = {oip: dt for oip, dt in ONNX_TYPES.values()}
NUMPY_TO_OIP: dict[np.dtype, str] = {dt: oip for oip, dt in ONNX_TYPES.values()}


@dataclass(frozen=True)
class TensorInfo:
    """One graph input or output: name, OIP datatype, shape (-1 for dynamic dims)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    onnx_type: str

    @property
    def numpy_dtype(self) -> np.dtype:
        return OIP_TO_NUMPY.get(self.datatype, np.dtype(np.float32))

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def _info(arg: ort.NodeArg) -> TensorInfo:
    datatype = ONNX_TYPES.get(arg.type, (arg.type, None))[0]
    shape = tuple(d if isinstance(d, int) else -1 for d in (arg.shape or []))
    return TensorInfo(arg.name, datatype, shape, arg.type)


def create_session(path: Path, options: OnnxConfig) -> ort.InferenceSession:
    """Open `path` on the CPU provider with serving-friendly options."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = options.intra_op_threads or os.cpu_count() or 1
    so.inter_op_num_threads = options.inter_op_threads
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = _OPT_LEVELS[options.graph_optimization]
    so.log_severity_level = 3
    spin = "1" if options.allow_spinning else "0"
    so.add_session_config_entry("session.intra_op.allow_spinning", spin)
    so.add_session_config_entry("session.inter_op.allow_spinning", spin)
    # Spinning stops as soon as the last concurrent run returns: threads sleep between requests
    # instead of busy-waiting into the idle time (docs/models.md measures the spinning).
    so.add_session_config_entry("session.force_spinning_stop", "1")
    if options.spin_duration_us is not None:
        spin_us = str(options.spin_duration_us)
        so.add_session_config_entry("session.intra_op.spin_duration_us", spin_us)
        so.add_session_config_entry("session.inter_op.spin_duration_us", spin_us)
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def session_inputs(session: ort.InferenceSession) -> list[TensorInfo]:
    return [_info(a) for a in session.get_inputs()]


def session_outputs(session: ort.InferenceSession) -> list[TensorInfo]:
    return [_info(a) for a in session.get_outputs()]
