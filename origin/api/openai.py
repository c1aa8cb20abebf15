"""OpenAI-compatible `/v1`: embeddings (so OpenAI SDKs work by changing the base URL),
classifications, and the model list.

`/v1/embeddings` takes the whole OpenAI request: `input` as strings or as token ids (a list of
ints or a list of lists, exactly the ids the model sees, as its own tokenizer makes them with
special tokens), `encoding_format` float or base64 (the SDKs' default), `dimensions` (the full
size, or one of the model's `matryoshka_dimensions`: cut, then L2-normalised again when the model
normalises) and `user` (accepted, not used).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from starlette.responses import Response

from origin.api.common import (
    caller_subject,
    check_texts,
    classification_items,
    embedding_items,
    json_response,
    no_store,
    parse_body,
    require_task,
    run_on_model,
    tokenize,
)
from origin.engine.tasks import TextItem
from origin.problems import Problem
from origin.repository.registry import ModelRegistry, ServedVersion
from origin.settings import OriginSettings

router = APIRouter(prefix="/v1", tags=["openai"])


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    input: str | list[str] | list[StrictInt] | list[list[StrictInt]] = Field(
        description="Text, texts, or token ids: one list of ints or a list of them."
    )
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(
        None, ge=1, description="The model's size or one of its matryoshka_dimensions."
    )
    user: str | None = Field(None, max_length=256, description="Accepted, not used.")


class ClassificationRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    input: str | list[str]
    top_k: int | None = Field(None, ge=1)


def _registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


def _texts(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


async def _run(
    request: Request,
    model: str,
    make_items: Callable[[ServedVersion], Awaitable[list[Any]]],
    *tasks: str,
) -> tuple[ServedVersion, int, list[Any]]:
    async def prepare(served: ServedVersion) -> tuple[list[Any], int]:
        require_task(served, *tasks)
        items = await make_items(served)
        return items, sum(it.cost for it in items)

    return await run_on_model(_registry(request), model, None, prepare, caller_subject(request))


async def _run_texts(
    request: Request, model: str, texts: list[str], *tasks: str
) -> tuple[ServedVersion, int, list[Any]]:
    check_texts(texts, request.app.state.settings)

    async def make_items(served: ServedVersion) -> list[Any]:
        return await tokenize(served, texts)

    return await _run(request, model, make_items, *tasks)


def token_items(
    served: ServedVersion, ids: list[list[int]], settings: OriginSettings
) -> list[TextItem]:
    """Token-id inputs as batch items, checked against the vocabulary and the length limit."""
    pipeline: Any = served.pipeline
    if len(ids) > settings.max_inputs_per_request:
        raise Problem(
            422,
            "too-many-inputs",
            f"{len(ids)} inputs; at most {settings.max_inputs_per_request} per request",
            errors=[{"field": "input", "message": "too many inputs"}],
        )
    items = []
    for i, row in enumerate(ids):
        if not row:
            raise _field_problem("invalid-request", f"input.{i}", f"input[{i}] has no token ids")
        if len(row) > pipeline.max_length:
            raise _field_problem(
                "input-too-long",
                f"input.{i}",
                f"input[{i}] has {len(row)} tokens; this model accepts at most "
                f"{pipeline.max_length}",
            )
        bad = next((t for t in row if not 0 <= t < pipeline.vocab_size), None)
        if bad is not None:
            raise _field_problem(
                "invalid-request",
                f"input.{i}",
                f"input[{i}] has token id {bad}; this model's ids are 0..{pipeline.vocab_size - 1}",
            )
        items.append(TextItem(list(row), [0] * len(row)))
    return items


def _field_problem(slug: str, field: str, message: str) -> Problem:
    return Problem(422, slug, message, errors=[{"field": field, "message": message}])


def check_dimensions(served: ServedVersion, dimensions: int | None) -> int | None:
    """The size to cut vectors to (None: keep them whole); 400 naming the allowed sizes."""
    width = served.pipeline.width  # type: ignore[union-attr]
    if dimensions is None or dimensions == width:
        return None
    allowed = sorted({width, *(served.config.matryoshka_dimensions or [])}, reverse=True)
    if dimensions not in allowed:
        raise Problem(
            400,
            "unsupported-dimensions",
            f"model {served.name!r} supports dimensions {allowed}; got {dimensions}",
            errors=[{"field": "dimensions", "message": f"one of {allowed}"}],
        )
    return dimensions


def cut(vectors: list[Any], dimensions: int, normalize: bool) -> list[Any]:
    """Matryoshka: keep the first `dimensions` values, L2-normalised again if `normalize`."""
    matrix = np.stack(vectors)[:, :dimensions]
    if normalize:
        matrix = matrix / np.clip(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12, None)
    return list(np.ascontiguousarray(matrix, dtype=np.float32))


@router.post("/embeddings")
async def embeddings(request: Request) -> Response:
    """OpenAI `POST /v1/embeddings`: float or base64 (little-endian float32) vectors."""
    req = await parse_body(request, EmbeddingsRequest)
    settings = request.app.state.settings
    value = req.input
    token_ids: list[list[int]] | None = None
    if isinstance(value, list) and value and not isinstance(value[0], str):
        token_ids = [value] if isinstance(value[0], int) else value  # type: ignore[list-item]
    else:
        check_texts(_texts(value), settings)  # type: ignore[arg-type]
    size: int | None = None

    async def make_items(served: ServedVersion) -> list[Any]:
        nonlocal size
        size = check_dimensions(served, req.dimensions)
        if token_ids is not None:
            return token_items(served, token_ids, settings)
        return await tokenize(served, _texts(value))  # type: ignore[arg-type]

    served, tokens, vectors = await _run(request, req.model, make_items, "embeddings")
    if size is not None:
        vectors = cut(vectors, size, served.config.normalize)
    body = {
        "object": "list",
        "data": embedding_items(vectors, req.encoding_format),
        "model": served.name,
        "model_version": served.version,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return json_response(body, served.headers)


@router.post("/classifications")
async def classifications(request: Request) -> Response:
    """Text classification: softmax scores, labels sorted best first, `top_k` of them."""
    req = await parse_body(request, ClassificationRequest)
    texts = _texts(req.input)
    served, tokens, probs = await _run_texts(request, req.model, texts, "text-classification")
    labels: list[str] = served.pipeline.labels  # type: ignore[union-attr]
    top_k = req.top_k or served.config.top_k or len(labels)
    body = {
        "object": "list",
        "model": served.name,
        "model_version": served.version,
        "data": classification_items(probs, labels, top_k),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return json_response(body, served.headers)


@router.get("/models")
async def list_models(request: Request) -> Response:
    """Every model: task, versions with state (and load errors), the version served."""
    return no_store({"object": "list", "data": _registry(request).describe()})


@router.get("/models/{model}")
async def get_model(request: Request, model: str) -> Response:
    reg = _registry(request)
    reg.entry(model)
    (item,) = [m for m in reg.describe() if m["name"] == model]
    return no_store(item)
