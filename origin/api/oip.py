"""Open Inference Protocol v2 REST (KServe v2 / Triton), JSON and binary tensors.

A request without a Content-Type is read as JSON, as Triton reads it (tritonclient sends none);
a gzip or deflate body (`Content-Encoding`) is inflated, within the body limit.
Tensors travel as JSON `data`, or with Triton's binary tensor data extension (both ways, every
datatype, BYTES length-prefixed: see `origin.api.oip_binary`): inputs with a `binary_data_size`
parameter take their bytes from after the JSON header, and outputs are answered as binary when
the request asks (`binary_data` on a requested output, or the request-level
`binary_data_output`). The operations themselves live in `origin.api.oip_core`, shared with gRPC.
Every error is problem+json with an `error` member, which OIP clients read. Which inputs each
kind of model takes (text, images, rerank pairs, tensors) is in `origin.api.oip_core`.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from origin.api import oip_core
from origin.api.common import caller_subject, json_response, no_store, parse_json, parse_version
from origin.api.oip_binary import binary_size, decode_raw, encode_raw, split_body, take_chunks
from origin.api.oip_core import InferCall, InferOutcome, InputTensor
from origin.api.uploads import body_limit
from origin.engine.tasks import oip_output
from origin.problems import Problem
from origin.repository.registry import ModelRegistry

router = APIRouter(prefix="/v2", tags=["open-inference-protocol"])

BINARY_MEDIA_TYPE = "application/octet-stream"
HEADER_LENGTH = "Inference-Header-Content-Length"


class InferInput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    shape: list[int]
    datatype: str
    data: Any = None
    parameters: dict[str, Any] | None = Field(
        None, description="`binary_data_size`: this input's bytes follow the JSON header."
    )


class RequestedOutput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    parameters: dict[str, Any] | None = Field(
        None, description="`binary_data`: answer this output as binary data (true/false)."
    )


class InferRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    inputs: list[InferInput] = Field(min_length=1)
    outputs: list[RequestedOutput] | None = None
    parameters: dict[str, Any] | None = Field(
        None, description="`binary_data_output`: answer every output as binary data."
    )


def _registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


@router.get("")
async def server_metadata() -> Response:
    return no_store(oip_core.server_metadata())


# ---------------------------------------------------------------------------- metadata
@router.get("/models/{model}")
async def model_metadata(request: Request, model: str) -> Response:
    return no_store(oip_core.model_metadata(_registry(request), model, None))


@router.get("/models/{model}/versions/{version}")
async def version_metadata(request: Request, model: str, version: str) -> Response:
    return no_store(oip_core.model_metadata(_registry(request), model, parse_version(version)))


def _ready(request: Request, name: str, version: int | None) -> Response:
    ready = oip_core.model_ready(_registry(request), name, version)
    return no_store({"name": name, "ready": ready}, 200 if ready else 503)


@router.get("/models/{model}/ready")
async def model_ready(request: Request, model: str) -> Response:
    return _ready(request, model, None)


@router.get("/models/{model}/versions/{version}/ready")
async def version_ready(request: Request, model: str, version: str) -> Response:
    return _ready(request, model, parse_version(version))


# ---------------------------------------------------------------------------- inference
@router.post("/models/{model}/infer")
async def infer(request: Request, model: str) -> Response:
    return await _infer(request, model, None)


@router.post("/models/{model}/versions/{version}/infer")
async def infer_version(request: Request, model: str, version: str) -> Response:
    return await _infer(request, model, parse_version(version))


async def _infer(request: Request, model: str, version: int | None) -> Response:
    req, call = await read_infer_request(request, model, version)
    outcome = await oip_core.infer(request.app.state, call)
    return infer_response(req, outcome)


def _check_media_type(request: Request) -> None:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media in ("", "application/json", BINARY_MEDIA_TYPE) or media.endswith("+json"):
        return
    raise Problem(
        415,
        "unsupported-media-type",
        f"send the body as application/json, or as {BINARY_MEDIA_TYPE} with the binary tensor "
        f"data extension (got {media!r})",
    )


def _decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """A gzip or deflate body (tritonclient's request_compression_algorithm), inflated to at
    most `limit` bytes (413 beyond, so a small bomb cannot grow into memory)."""
    if encoding is None or encoding.strip().lower() == "identity":
        return body
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}.get(encoding.strip().lower())
    if wbits is None:
        raise Problem(
            415, "unsupported-media-type", f"Content-Encoding {encoding!r}: use gzip or deflate"
        )
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise Problem(400, "malformed-request", f"the body is not valid {encoding}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise Problem(
            413, "payload-too-large", f"the inflated body exceeds the limit of {limit} bytes"
        )
    return out


async def read_infer_request(
    request: Request, model: str, version: int | None
) -> tuple[InferRequest, InferCall]:
    """Decode a JSON or binary-extension body: 415 / 400 / 413 / 422 problems."""
    _check_media_type(request)
    body = _decompress(
        await request.body(),
        request.headers.get("content-encoding"),
        body_limit(request.app.state.settings)(request.scope),
    )
    header, binary = split_body(body, request.headers.get(HEADER_LENGTH))
    req = parse_json(header, InferRequest)
    oip_core.check_parameters("request", req.parameters)
    for out in req.outputs or []:
        oip_core.check_parameters(f"output {out.name!r}", out.parameters)
    sizes = []
    for inp in req.inputs:
        oip_core.check_parameters(f"input {inp.name!r}", inp.parameters)
        sizes.append((inp.name, binary_size(inp.name, inp.parameters)))
    inputs = []
    for i, (inp, chunk) in enumerate(zip(req.inputs, take_chunks(sizes, binary), strict=True)):
        data = inp.data
        if chunk is not None:
            if data is not None:
                raise Problem(
                    400,
                    "malformed-tensor",
                    f"input {inp.name!r} has both data and binary_data_size",
                )
            data = decode_raw(inp.name, inp.datatype, inp.shape, chunk)
        elif data is None:
            message = f"input {inp.name!r} has neither data nor binary_data_size"
            raise Problem(
                422,
                "invalid-request",
                message,
                errors=[{"field": f"inputs.{i}.data", "message": message}],
            )
        inputs.append(InputTensor(inp.name, inp.datatype, tuple(inp.shape), data))
    wanted = [o.name for o in req.outputs] if req.outputs else None
    return req, InferCall(model, version, inputs, wanted, caller_subject(request))


def _flag(parameters: dict[str, Any] | None, key: str, default: bool) -> bool:
    if not parameters or key not in parameters:
        return default
    value = parameters[key]
    if not isinstance(value, bool):
        message = f"parameter {key!r} must be true or false"
        raise Problem(422, "invalid-request", message, errors=[{"field": key, "message": message}])
    return value


def infer_response(req: InferRequest, outcome: InferOutcome) -> Response:
    """JSON body, or the JSON header plus binary outputs when any output is asked as binary."""
    all_binary = _flag(req.parameters, "binary_data_output", False)
    per_output = {o.name: _flag(o.parameters, "binary_data", all_binary) for o in req.outputs or []}
    served = outcome.served
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, array in outcome.outputs:
        if per_output.get(name, all_binary):
            datatype, raw = encode_raw(array)
            outputs.append(
                {
                    "name": name,
                    "datatype": datatype,
                    "shape": list(array.shape),
                    "parameters": {"binary_data_size": len(raw)},
                }
            )
            blobs.append(raw)
        else:
            outputs.append(oip_output(name, array))
    body: dict[str, Any] = {
        "model_name": served.name,
        "model_version": str(served.version),
        "outputs": outputs,
    }
    if req.id is not None:
        body["id"] = req.id
    if not blobs:
        return json_response(body, served.headers)
    header = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(
        b"".join((header, *blobs)),
        media_type=BINARY_MEDIA_TYPE,
        headers={**served.headers, HEADER_LENGTH: str(len(header))},
    )
