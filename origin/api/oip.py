"""Open Inference Protocol v2 (KServe v2 REST), JSON tensors only.

Text models take one BYTES input (shape [n] or [n, 1], data = strings) and return
`embedding` FP32 [n, dim], or `probabilities` FP32 [n, classes] plus `label` BYTES [n].
Image models take one BYTES input of encoded images (JPEG, PNG, WebP, HEIC; in JSON each
element is base64 or a data URL) and answer like the text models. Rerank models (cross-encoders)
take BYTES `query` ([1], or [n] for n independent pairs) and `document` ([n]) and return
`score` FP32 [n]. Tensor models take the graph's own inputs and return its outputs. The binary
tensor data extension is not supported (400 with a clear detail); output `binary_data` requests
are answered with JSON data, which Triton's client accepts.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from origin import __version__
from origin.api.common import (
    check_texts,
    json_response,
    no_store,
    parse_body,
    parse_version,
    run_on_model,
    tokenize,
)
from origin.api.images import run_images
from origin.api.rerank import score
from origin.api.uploads import check_count, image_bytes
from origin.engine.tasks import InputError, oip_output
from origin.problems import Problem
from origin.repository.config import IMAGE_TASKS
from origin.repository.registry import ModelRegistry, ServedVersion

router = APIRouter(prefix="/v2", tags=["open-inference-protocol"])


class InferInput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    shape: list[int]
    datatype: str
    data: Any = None
    parameters: dict[str, Any] | None = None


class RequestedOutput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    inputs: list[InferInput] = Field(min_length=1)
    outputs: list[RequestedOutput] | None = None
    parameters: dict[str, Any] | None = None


def _registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


@router.get("")
async def server_metadata() -> Response:
    return no_store({"name": "outpost-origin", "version": __version__, "extensions": []})


# ---------------------------------------------------------------------------- metadata
def _text_io(served: ServedVersion) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    p: Any = served.pipeline
    if p.task == "rerank":
        return [
            {"name": "query", "datatype": "BYTES", "shape": [-1]},
            {"name": "document", "datatype": "BYTES", "shape": [-1]},
        ], [{"name": "score", "datatype": "FP32", "shape": [-1]}]
    name = "image" if p.task in IMAGE_TASKS else "text"
    inputs = [{"name": name, "datatype": "BYTES", "shape": [-1]}]
    if p.task in ("embeddings", "image-embeddings"):
        return inputs, [{"name": "embedding", "datatype": "FP32", "shape": [-1, p.dimensions]}]
    return inputs, [
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(p.labels)]},
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
    ]


def _metadata(reg: ModelRegistry, name: str, version: int | None) -> dict[str, Any]:
    entry = reg.entry(name)
    served = reg.resolve(name, version)
    if served.pipeline.task == "tensor":
        inputs = [t.to_dict() for t in served.pipeline.inputs]
        outputs = [t.to_dict() for t in served.pipeline.outputs]
    else:
        inputs, outputs = _text_io(served)
    versions = [str(v) for v, st in sorted(entry.versions.items()) if st.served is not None]
    return {
        "name": name,
        "versions": versions if version is None else [str(version)],
        "platform": "onnxruntime_onnx",
        "inputs": inputs,
        "outputs": outputs,
        "parameters": {"task": served.pipeline.task, "served_version": str(served.version)},
    }


@router.get("/models/{model}")
async def model_metadata(request: Request, model: str) -> Response:
    return no_store(_metadata(_registry(request), model, None))


@router.get("/models/{model}/versions/{version}")
async def version_metadata(request: Request, model: str, version: str) -> Response:
    return no_store(_metadata(_registry(request), model, parse_version(version)))


def _ready(reg: ModelRegistry, name: str, version: int | None) -> Response:
    entry = reg.entry(name)
    if version is None:
        ready = entry.current is not None
    else:
        st = entry.versions.get(version)
        if st is None:
            raise Problem(404, "version-not-found", f"model {name!r} has no version {version}")
        ready = st.served is not None
    return no_store({"name": name, "ready": ready}, 200 if ready else 503)


@router.get("/models/{model}/ready")
async def model_ready(request: Request, model: str) -> Response:
    return _ready(_registry(request), model, None)


@router.get("/models/{model}/versions/{version}/ready")
async def version_ready(request: Request, model: str, version: str) -> Response:
    return _ready(_registry(request), model, parse_version(version))


# ---------------------------------------------------------------------------- inference
@router.post("/models/{model}/infer")
async def infer(request: Request, model: str) -> Response:
    return await _infer(request, model, None)


@router.post("/models/{model}/versions/{version}/infer")
async def infer_version(request: Request, model: str, version: str) -> Response:
    return await _infer(request, model, parse_version(version))


def _reject_binary(request: Request, req: InferRequest | None = None) -> None:
    if request.headers.get("inference-header-content-length") is not None:
        raise Problem(
            400,
            "binary-data-unsupported",
            "the binary tensor data extension is not supported; send tensors as JSON data "
            "(e.g. binary_data=False in tritonclient)",
        )
    if req is not None:
        for inp in req.inputs:
            if inp.parameters and "binary_data_size" in inp.parameters:
                raise Problem(
                    400,
                    "binary-data-unsupported",
                    f"input {inp.name!r} uses binary_data_size; send JSON data instead",
                )


async def _infer(request: Request, model: str, version: int | None) -> Response:
    _reject_binary(request)
    reg = _registry(request)
    task = reg.resolve(model, version).pipeline.task
    req = await parse_body(request, InferRequest)
    _reject_binary(request, req)
    limit = request.app.state.settings.max_body_bytes
    if task not in IMAGE_TASKS and len(await request.body()) > limit:
        # The route admits image-sized bodies (uploads.body_limit); other models do not.
        raise Problem(413, "payload-too-large", f"request body exceeds the limit of {limit} bytes")
    if task == "tensor":
        served, outputs = await _infer_tensor(reg, model, version, req)
    elif task in IMAGE_TASKS:
        served, outputs = await _infer_images(request, model, version, req, task)
    elif task == "rerank":
        served, outputs = await _infer_rerank(request, model, version, req)
    else:
        served, outputs = await _infer_text(request, reg, model, version, req)
    if req.outputs:
        wanted = [o.name for o in req.outputs]
        known = {o["name"]: o for o in outputs}
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise Problem(
                422,
                "unknown-output",
                f"unknown output(s) {unknown}; the model has {sorted(known)}",
                errors=[{"field": "outputs", "message": "unknown output"}],
            )
        outputs = [known[w] for w in wanted]
    body: dict[str, Any] = {
        "model_name": served.name,
        "model_version": str(served.version),
        "outputs": outputs,
    }
    if req.id is not None:
        body["id"] = req.id
    return json_response(body, served.headers)


def _text_input(req: InferRequest) -> list[str]:
    if len(req.inputs) != 1:
        raise Problem(
            422,
            "invalid-request",
            "text models take exactly one BYTES input",
            errors=[{"field": "inputs", "message": "expected one input"}],
        )
    return _bytes_input(req.inputs[0], 0)


def _bytes_input(inp: InferInput, pos: int, kinds: tuple[type, ...] = (str,)) -> list[Any]:
    """The elements of a BYTES input (shape [n] or [n, 1]): strings, or with `kinds` also raw
    bytes (as the binary tensor extension delivers them)."""
    if inp.datatype != "BYTES":
        raise Problem(
            422,
            "invalid-request",
            f"input {inp.name!r} must be BYTES (strings), got {inp.datatype}",
            errors=[{"field": f"inputs.{pos}.datatype", "message": "expected BYTES"}],
        )
    data = inp.data
    flat = list(np.asarray(data, dtype=object).reshape(-1)) if isinstance(data, list) else None
    if flat is None or not all(isinstance(x, kinds) for x in flat):
        raise Problem(
            422,
            "invalid-request",
            f"input {inp.name!r}: data must be a list of strings",
            errors=[{"field": f"inputs.{pos}.data", "message": "expected strings"}],
        )
    if (
        not inp.shape
        or len(inp.shape) > 2
        or (len(inp.shape) == 2 and inp.shape[1] != 1)
        or any(d < 0 for d in inp.shape)
        or math.prod(inp.shape) != len(flat)
    ):
        raise Problem(
            422,
            "invalid-request",
            f"input {inp.name!r}: shape must be [n] or [n, 1] matching {len(flat)} elements, "
            f"got {inp.shape}",
            errors=[{"field": f"inputs.{pos}.shape", "message": "shape mismatch"}],
        )
    return flat


async def _infer_images(
    request: Request, model: str, version: int | None, req: InferRequest, task: str
) -> tuple[ServedVersion, list[dict[str, Any]]]:
    if len(req.inputs) != 1:
        raise Problem(
            422,
            "invalid-request",
            "image models take exactly one BYTES input of encoded images",
            errors=[{"field": "inputs", "message": "expected one input"}],
        )
    values = _bytes_input(req.inputs[0], 0, (str, bytes))
    check_count(len(values), request.app.state.settings, "inputs.0.data")
    blobs = [image_bytes(v, f"inputs.0.data.{i}") for i, v in enumerate(values)]
    served, results = await run_images(request, model, version, blobs, task, "inputs.0.data")
    return served, _vector_outputs(served, results)


async def _infer_rerank(
    request: Request, model: str, version: int | None, req: InferRequest
) -> tuple[ServedVersion, list[dict[str, Any]]]:
    by_name = {inp.name: (pos, inp) for pos, inp in enumerate(req.inputs)}
    if sorted(by_name) != ["document", "query"] or len(req.inputs) != 2:
        raise Problem(
            422,
            "invalid-request",
            "rerank models take two BYTES inputs: query ([1] or [n]) and document ([n])",
            errors=[{"field": "inputs", "message": "expected query and document"}],
        )
    queries = _bytes_input(by_name["query"][1], by_name["query"][0])
    docs = _bytes_input(by_name["document"][1], by_name["document"][0])
    if len(queries) not in (1, len(docs)):
        raise Problem(
            422,
            "invalid-request",
            f"query has {len(queries)} elements; send 1, or one per document ({len(docs)})",
            errors=[{"field": "inputs", "message": "query and document counts differ"}],
        )
    settings = request.app.state.settings
    check_texts(queries, settings, field="query")
    check_texts(docs, settings, field="document")
    served, _, scores = await score(request, model, version, queries, docs)
    return served, [oip_output("score", np.asarray(scores, dtype=np.float32))]


async def _infer_text(
    request: Request, reg: ModelRegistry, model: str, version: int | None, req: InferRequest
) -> tuple[ServedVersion, list[dict[str, Any]]]:
    texts = _text_input(req)
    check_texts(texts, request.app.state.settings, field="inputs.0.data")

    async def prepare(served: ServedVersion) -> tuple[list[Any], None]:
        return await tokenize(served, texts, field="inputs.0.data"), None

    served, _, results = await run_on_model(reg, model, version, prepare)
    return served, _vector_outputs(served, results)


def _vector_outputs(served: ServedVersion, results: list[Any]) -> list[dict[str, Any]]:
    """`embedding` [n, dim] for embedding tasks; `probabilities` [n, classes] and `label` [n]
    for classification."""
    matrix = np.stack(results)
    if served.pipeline.task in ("embeddings", "image-embeddings"):
        return [oip_output("embedding", matrix)]
    labels: list[str] = served.pipeline.labels  # type: ignore[union-attr]
    top = np.asarray([labels[i] for i in matrix.argmax(axis=1)], dtype=object)
    return [oip_output("probabilities", matrix), oip_output("label", top)]


async def _infer_tensor(
    reg: ModelRegistry, model: str, version: int | None, req: InferRequest
) -> tuple[ServedVersion, list[dict[str, Any]]]:
    names = [i.name for i in req.inputs]
    if len(set(names)) != len(names):
        raise Problem(
            422,
            "invalid-request",
            "duplicate input names",
            errors=[{"field": "inputs", "message": "duplicate names"}],
        )
    tensors = {i.name: (i.datatype, i.shape, i.data) for i in req.inputs}

    async def prepare(served: ServedVersion) -> tuple[list[Any], None]:
        try:
            return [served.pipeline.prepare(tensors)], None  # type: ignore[union-attr]
        except InputError as exc:
            raise Problem(
                422,
                "invalid-tensor",
                exc.message,
                errors=[{"field": exc.field, "message": exc.message}],
            ) from None

    served, _, results = await run_on_model(reg, model, version, prepare)
    (arrays,) = results
    return served, [oip_output(n, a) for n, a in arrays.items()]
