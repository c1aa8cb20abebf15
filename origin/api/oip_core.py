"""The Open Inference Protocol's operations, whatever the transport (REST JSON, REST binary, gRPC).

Transports decode their requests into an `InferCall` (tensors as JSON values or numpy arrays),
`infer` runs it on the registry's model through its batcher, and the transport encodes the
`InferOutcome`'s (name, array) outputs its own way. Errors are `Problem`s, which each transport
renders (problem+json, or a gRPC status).

Text models take one BYTES input (shape [n] or [n, 1]; strings, or UTF-8 bytes) and return
`embedding` FP32 [n, dim], or `probabilities` FP32 [n, classes] plus `label` BYTES [n]. Image
models take one BYTES input of encoded images (JPEG, PNG, WebP, HEIC: raw bytes, or in JSON
base64 or a data URL) and answer like the text models. Rerank models (cross-encoders) take BYTES
`query` ([1], or [n] for n independent pairs) and `document` ([n]) and return `score` FP32 [n].
Tensor models take the graph's own inputs and return its outputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from origin import __version__
from origin.api.common import check_texts, run_on_model, tokenize
from origin.api.images import run_images
from origin.api.oip_binary import check_datatype
from origin.api.rerank import score
from origin.api.uploads import check_count, image_bytes
from origin.engine.tasks import InputError
from origin.problems import Problem
from origin.repository.config import IMAGE_TASKS
from origin.repository.registry import ModelRegistry, ServedVersion

SERVER_NAME = "outpost-origin"
EXTENSIONS = ["binary_tensor_data"]
_UNSUPPORTED_PARAMETERS = (
    "shared_memory_region",
    "shared_memory_byte_size",
    "shared_memory_offset",
)


@dataclass(frozen=True, slots=True)
class InputTensor:
    """One request input: `data` is JSON values (nested lists) or a decoded flat numpy array."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: Any


@dataclass(frozen=True, slots=True)
class InferCall:
    """One inference request, decoded by its transport."""

    model: str
    version: int | None
    inputs: Sequence[InputTensor]
    outputs: Sequence[str] | None = None  # requested output names; None: all of them
    subject: str | None = None  # the verified caller, for fair scheduling; None: anonymous


@dataclass(frozen=True, slots=True)
class InferOutcome:
    served: ServedVersion
    outputs: list[tuple[str, np.ndarray]]


def server_metadata() -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}


def check_parameters(where: str, parameters: Mapping[str, Any] | None) -> None:
    """Refuse Triton extensions this server does not implement (400), ignore the rest."""
    if not parameters:
        return
    for key in _UNSUPPORTED_PARAMETERS:
        if key in parameters:
            raise Problem(
                400,
                "unsupported-parameter",
                f"{where}: {key!r} (Triton's shared-memory extension) is not supported; send "
                "the tensor data in the request",
            )
    if parameters.get("class_count"):
        raise Problem(
            400,
            "unsupported-parameter",
            f"{where}: 'class_count' (Triton's classification extension) is not supported",
        )


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


def model_metadata(reg: ModelRegistry, name: str, version: int | None) -> dict[str, Any]:
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


def model_ready(reg: ModelRegistry, name: str, version: int | None) -> bool:
    """Whether the model (or that version) serves; 404 for an unknown model or version."""
    entry = reg.entry(name)
    if version is None:
        return entry.current is not None
    st = entry.versions.get(version)
    if st is None:
        raise Problem(404, "version-not-found", f"model {name!r} has no version {version}")
    return st.served is not None


# ---------------------------------------------------------------------------- inference
async def infer(state: Any, call: InferCall) -> InferOutcome:
    """Run one call on its model (`state`: the app's state: registry, settings, image
    decoder); outputs in the requested order (422 for unknown names)."""
    reg: ModelRegistry = state.registry
    names = [i.name for i in call.inputs]
    if not names:
        raise _invalid("inputs", "at least one input is required")
    if len(set(names)) != len(names):
        raise _invalid("inputs", "duplicate input names")
    for inp in call.inputs:
        check_datatype(inp.name, inp.datatype)
    task = reg.resolve(call.model, call.version).pipeline.task
    if task == "tensor":
        served, outputs = await _infer_tensor(reg, call)
    elif task in IMAGE_TASKS:
        served, outputs = await _infer_images(state, call, task)
    elif task == "rerank":
        served, outputs = await _infer_rerank(state, call)
    else:
        served, outputs = await _infer_text(reg, state.settings, call)
    if call.outputs:
        known = dict(outputs)
        unknown = [w for w in call.outputs if w not in known]
        if unknown:
            raise Problem(
                422,
                "unknown-output",
                f"unknown output(s) {unknown}; the model has {sorted(known)}",
                errors=[{"field": "outputs", "message": "unknown output"}],
            )
        outputs = [(w, known[w]) for w in call.outputs]
    return InferOutcome(served, outputs)


def _invalid(field: str, message: str) -> Problem:
    return Problem(422, "invalid-request", message, errors=[{"field": field, "message": message}])


def _flat_values(data: Any) -> list[Any] | None:
    if isinstance(data, np.ndarray):
        return list(data.reshape(-1))
    if isinstance(data, list):
        try:
            return list(np.asarray(data, dtype=object).reshape(-1))
        except ValueError:
            return None
    return None


def bytes_elements(inp: InputTensor, pos: int) -> list[str | bytes]:
    """The elements of a BYTES input of shape [n] or [n, 1]: strings or raw bytes."""
    if inp.datatype != "BYTES":
        raise _invalid(
            f"inputs.{pos}.datatype",
            f"input {inp.name!r} must be BYTES, got {inp.datatype}",
        )
    flat = _flat_values(inp.data)
    if flat is None or not all(isinstance(x, str | bytes) for x in flat):
        raise _invalid(f"inputs.{pos}.data", f"input {inp.name!r}: data must be a list of strings")
    shape = inp.shape
    if (
        not shape
        or len(shape) > 2
        or (len(shape) == 2 and shape[1] != 1)
        or any(d < 0 for d in shape)
        or math.prod(shape) != len(flat)
    ):
        raise _invalid(
            f"inputs.{pos}.shape",
            f"input {inp.name!r}: shape must be [n] or [n, 1] matching {len(flat)} elements, "
            f"got {list(shape)}",
        )
    return flat


def _texts(inp: InputTensor, pos: int) -> list[str]:
    """A BYTES input's elements as text (UTF-8 bytes decoded; 422 naming a bad element)."""
    texts = []
    for i, x in enumerate(bytes_elements(inp, pos)):
        if isinstance(x, bytes):
            try:
                x = x.decode("utf-8")
            except UnicodeDecodeError:
                raise _invalid(
                    f"inputs.{pos}.data.{i}",
                    f"input {inp.name!r}: element {i} is not valid UTF-8",
                ) from None
        texts.append(x)
    return texts


def text_input(call: InferCall) -> list[str]:
    """The strings of a text model's one BYTES input (UTF-8 bytes are decoded)."""
    if len(call.inputs) != 1:
        raise _invalid("inputs", "text models take exactly one BYTES input")
    return _texts(call.inputs[0], 0)


async def _infer_images(
    state: Any, call: InferCall, task: str
) -> tuple[ServedVersion, list[tuple[str, np.ndarray]]]:
    if len(call.inputs) != 1:
        raise _invalid("inputs", "image models take exactly one BYTES input of encoded images")
    values = bytes_elements(call.inputs[0], 0)
    check_count(len(values), state.settings, "inputs.0.data")
    blobs = [image_bytes(v, f"inputs.0.data.{i}") for i, v in enumerate(values)]
    served, results = await run_images(
        state, call.model, call.version, blobs, task, "inputs.0.data", call.subject
    )
    return served, _vector_outputs(served, results)


async def _infer_rerank(
    state: Any, call: InferCall
) -> tuple[ServedVersion, list[tuple[str, np.ndarray]]]:
    positions = {inp.name: pos for pos, inp in enumerate(call.inputs)}
    if sorted(positions) != ["document", "query"] or len(call.inputs) != 2:
        raise _invalid(
            "inputs", "rerank models take two BYTES inputs: query ([1] or [n]) and document ([n])"
        )
    queries = _texts(call.inputs[positions["query"]], positions["query"])
    docs = _texts(call.inputs[positions["document"]], positions["document"])
    if len(queries) not in (1, len(docs)):
        raise _invalid(
            "inputs",
            f"query has {len(queries)} elements; send 1, or one per document ({len(docs)})",
        )
    check_texts(queries, state.settings, field="query")
    check_texts(docs, state.settings, field="document")
    served, _, scores = await score(
        state.registry, call.model, call.version, queries, docs, call.subject
    )
    return served, [("score", np.asarray(scores, dtype=np.float32))]


def _vector_outputs(served: ServedVersion, results: list[Any]) -> list[tuple[str, np.ndarray]]:
    """`embedding` [n, dim] for embedding tasks; `probabilities` [n, classes] and `label` [n]
    for classification."""
    matrix = np.stack(results)
    if served.pipeline.task in ("embeddings", "image-embeddings"):
        return [("embedding", matrix)]
    labels: list[str] = served.pipeline.labels  # type: ignore[union-attr]
    top = np.asarray([labels[i] for i in matrix.argmax(axis=1)], dtype=object)
    return [("probabilities", matrix), ("label", top)]


async def _infer_text(
    reg: ModelRegistry, settings: Any, call: InferCall
) -> tuple[ServedVersion, list[tuple[str, np.ndarray]]]:
    texts = text_input(call)
    check_texts(texts, settings, field="inputs.0.data")

    async def prepare(served: ServedVersion) -> tuple[list[Any], None]:
        return await tokenize(served, texts, field="inputs.0.data"), None

    served, _, results = await run_on_model(reg, call.model, call.version, prepare, call.subject)
    return served, _vector_outputs(served, results)


def _as_text(inp: InputTensor) -> Any:
    """BYTES elements as str: onnxruntime's string tensors take Python text (bytes would be
    turned into their repr), so they must be UTF-8 (422 naming the element otherwise)."""
    if inp.datatype != "BYTES" or not isinstance(inp.data, np.ndarray):
        return inp.data
    out = np.empty(inp.data.shape, dtype=object)
    for i, x in enumerate(inp.data.reshape(-1)):
        try:
            out[i] = x.decode("utf-8") if isinstance(x, bytes) else x
        except UnicodeDecodeError:
            raise Problem(
                422,
                "invalid-tensor",
                f"input {inp.name!r}: element {i} is not valid UTF-8 (string tensors hold text)",
                errors=[{"field": inp.name, "message": "not UTF-8"}],
            ) from None
    return out


async def _infer_tensor(
    reg: ModelRegistry, call: InferCall
) -> tuple[ServedVersion, list[tuple[str, np.ndarray]]]:
    tensors = {i.name: (i.datatype, list(i.shape), _as_text(i)) for i in call.inputs}

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

    served, _, results = await run_on_model(reg, call.model, call.version, prepare, call.subject)
    (arrays,) = results
    return served, [(n, np.asarray(a)) for n, a in arrays.items()]
