"""OpenAI-compatible `/v1`: embeddings (so OpenAI SDKs work by changing the base URL),
classifications, and the model list."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from origin.api.common import (
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
from origin.problems import Problem
from origin.repository.registry import ModelRegistry, ServedVersion

router = APIRouter(prefix="/v1", tags=["openai"])


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None


class ClassificationRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    input: str | list[str]
    top_k: int | None = Field(None, ge=1)


def _registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


def _texts(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


async def _run_texts(
    request: Request, model: str, texts: list[str], *tasks: str
) -> tuple[ServedVersion, int, list[Any]]:
    check_texts(texts, request.app.state.settings)

    async def prepare(served: ServedVersion) -> tuple[list[Any], int]:
        require_task(served, *tasks)
        items = await tokenize(served, texts)
        return items, sum(it.cost for it in items)

    served, tokens, results = await run_on_model(_registry(request), model, None, prepare)
    return served, tokens, results


@router.post("/embeddings")
async def embeddings(request: Request) -> Response:
    """OpenAI `POST /v1/embeddings`: float or base64 (little-endian float32) vectors."""
    req = await parse_body(request, EmbeddingsRequest)
    texts = _texts(req.input)
    served, tokens, vectors = await _run_texts(request, req.model, texts, "embeddings")
    dims = len(vectors[0])
    if req.dimensions is not None and req.dimensions != dims:
        raise Problem(
            422,
            "unsupported-dimensions",
            f"model {req.model!r} returns {dims}-dimensional embeddings; dimensions="
            f"{req.dimensions} is not supported",
            errors=[{"field": "dimensions", "message": "unsupported"}],
        )
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
