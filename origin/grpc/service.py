"""`inference.GRPCInferenceService`: the Open Inference Protocol's six calls over gRPC.

Each call runs the operation `origin.api.oip_core` runs for HTTP, on the same registry, batcher
and sessions. Inputs may come as `raw_input_contents` (what tritonclient sends) or as typed
`contents`; outputs are always answered as `raw_output_contents` (as Triton does). A `Problem`
becomes the gRPC status of `origin.grpc.status`; any other exception is logged with the request
id and answered INTERNAL without detail.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import numpy as np

from origin.api import oip_core
from origin.api.common import parse_version
from origin.api.health import health_summary
from origin.api.oip_binary import check_datatype, decode_raw, element_count, encode_raw, malformed
from origin.api.oip_core import InferCall, InputTensor
from origin.caller import caller_subject
from origin.grpc import protocol as pb
from origin.grpc.status import problem_metadata, status_code
from origin.problems import Problem

log = logging.getLogger("origin.access")
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

# Typed contents field of each datatype (FP16 and BF16 travel as raw contents only).
_CONTENTS: dict[str, tuple[str, Any]] = {
    "BOOL": ("bool_contents", np.bool_),
    "INT8": ("int_contents", np.int32),
    "INT16": ("int_contents", np.int32),
    "INT32": ("int_contents", np.int32),
    "INT64": ("int64_contents", np.int64),
    "UINT8": ("uint_contents", np.uint32),
    "UINT16": ("uint_contents", np.uint32),
    "UINT32": ("uint_contents", np.uint32),
    "UINT64": ("uint64_contents", np.uint64),
    "FP32": ("fp32_contents", np.float32),
    "FP64": ("fp64_contents", np.float64),
    "BYTES": ("bytes_contents", object),
}

Handler = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


def _version(value: str) -> int | None:
    return parse_version(value) if value else None


def _parameters(params: Any) -> dict[str, Any]:
    """An InferParameter map as plain values."""
    return {
        k: getattr(v, v.WhichOneof("parameter_choice") or "bool_param") for k, v in params.items()
    }


def decode_contents(name: str, datatype: str, shape: tuple[int, ...], contents: Any) -> Any:
    """Typed `InferTensorContents` -> a flat numpy array of the datatype (400 when they do not
    fill the shape, or a value does not fit the datatype)."""
    dtype = check_datatype(name, datatype)
    count = element_count(name, shape)
    if datatype not in _CONTENTS:
        raise malformed(f"input {name!r}: {datatype} travels only as raw_input_contents")
    field, wide = _CONTENTS[datatype]
    values = getattr(contents, field)
    if len(values) != count:
        raise malformed(
            f"input {name!r}: {len(values)} values in {field} do not fill shape {list(shape)}"
        )
    if datatype == "BYTES":
        out = np.empty(count, dtype=object)
        out[:] = list(values)
        return out
    array = np.asarray(values, dtype=wide)
    native = dtype.newbyteorder("=")
    if array.dtype != native:
        info = np.iinfo(native)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise malformed(f"input {name!r}: a value in {field} does not fit {datatype}")
        array = array.astype(native)
    return array


def infer_call(request: Any, subject: str | None = None) -> InferCall:
    """A ModelInferRequest decoded into the transport-neutral call of `subject` (the verified
    caller, for fair scheduling; None: batched as one anonymous subject)."""
    oip_core.check_parameters("request", _parameters(request.parameters))
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise malformed(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs"
        )
    inputs = []
    for i, t in enumerate(request.inputs):
        oip_core.check_parameters(f"input {t.name!r}", _parameters(t.parameters))
        shape = tuple(t.shape)
        if raw:
            if t.HasField("contents"):
                raise malformed(f"input {t.name!r} has both contents and raw_input_contents")
            data = decode_raw(t.name, t.datatype, shape, raw[i])
        else:
            data = decode_contents(t.name, t.datatype, shape, t.contents)
        inputs.append(InputTensor(t.name, t.datatype, shape, data))
    for o in request.outputs:
        oip_core.check_parameters(f"output {o.name!r}", _parameters(o.parameters))
    wanted = [o.name for o in request.outputs] or None
    return InferCall(request.model_name, _version(request.model_version), inputs, wanted, subject)


class InferenceService:
    """The servicer; `state` is the origin app's state (registry, settings, metrics)."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        """One unary handler per method of the service, wrapped by `_serve`."""
        out = {}
        for method in pb.SERVICE.methods:
            request_type, response_type = pb.method_types(method.name)
            out[method.name] = grpc.unary_unary_rpc_method_handler(
                self._serve(method.name, getattr(self, method.name)),
                request_deserializer=request_type.FromString,
                response_serializer=response_type.SerializeToString,
            )
        return out

    def _serve(self, name: str, handler: Handler) -> Handler:
        route = f"/{pb.SERVICE_NAME}/{name}"
        metrics = self.state.metrics
        access_log = self.state.settings.access_log

        async def serve(request: Any, context: grpc.aio.ServicerContext) -> Any:
            start = time.perf_counter()
            metadata = dict(context.invocation_metadata() or ())
            given = metadata.get("x-request-id")
            sane = isinstance(given, str) and _SANE_ID.fullmatch(given)
            rid = given if sane else uuid.uuid4().hex
            code = grpc.StatusCode.OK
            try:
                response = await handler(request, context)
                context.set_trailing_metadata((("x-request-id", rid),))
                return response
            except Problem as problem:
                code = status_code(problem)
                await context.abort(
                    code,
                    problem.detail or problem.title,
                    trailing_metadata=problem_metadata(problem, rid),
                )
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED  # the client went away or its deadline passed
                raise
            except Exception as exc:
                if isinstance(exc, grpc.aio.AbortError):
                    raise
                code = grpc.StatusCode.INTERNAL
                log.exception("unhandled error request_id=%s route=%s", rid, route)
                await context.abort(code, "internal error", (("x-request-id", rid),))
            finally:
                elapsed = time.perf_counter() - start
                metrics.grpc_requests.labels(name, code.name).inc()
                metrics.grpc_request_seconds.labels(name).observe(elapsed)
                if access_log:
                    log.info(
                        "request_id=%s method=grpc route=%s status=%s duration_ms=%.1f",
                        rid,
                        route,
                        code.name,
                        elapsed * 1000,
                    )

        return serve

    # -- the six calls ----------------------------------------------------------------------
    async def ServerLive(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=bool(health_summary(self.state)["ready"]))

    async def ModelReady(self, request: Any, context: Any) -> Any:
        ready = oip_core.model_ready(self.state.registry, request.name, _version(request.version))
        return pb.ModelReadyResponse(ready=ready)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        return pb.ServerMetadataResponse(**oip_core.server_metadata())

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        meta = oip_core.model_metadata(self.state.registry, request.name, _version(request.version))
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=[tensor(**t) for t in meta["inputs"]],
            outputs=[tensor(**t) for t in meta["outputs"]],
        )

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        call = infer_call(request, caller_subject.get())
        outcome = await oip_core.infer(self.state, call)
        served = outcome.served
        response = pb.ModelInferResponse(
            model_name=served.name, model_version=str(served.version), id=request.id
        )
        for name, array in outcome.outputs:
            datatype, raw = encode_raw(array)
            response.outputs.add(name=name, datatype=datatype, shape=list(array.shape))
            response.raw_output_contents.append(raw)
        return response
