"""Helpers shared by the routers: fast JSON in/out, limits, and running inputs through a model."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import orjson
from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from origin import strict, tracing
from origin.engine.batcher import BatcherClosed, QueueFull
from origin.engine.tasks import InputError
from origin.problems import Problem, validation_problem
from origin.repository.registry import ModelRegistry, ServedVersion
from origin.settings import OriginSettings

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

_INLINE_TOKENIZE_CHARS = 4096  # above this, tokenize in a thread so the loop stays free


def json_response(data: Any, headers: dict[str, str] | None = None, status: int = 200) -> Response:
    """orjson-encoded response (numpy arrays allowed)."""
    body = orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def no_store(data: Any, status: int = 200) -> Response:
    return json_response(data, {"Cache-Control": "no-store"}, status)


async def parse_body(request: Request, model: type[M]) -> M:
    """Check the content type, read the body and validate it: 415 / 400 / 422 problems.

    Without a Content-Type the body is looked at first, as the edge does (it reads such bodies
    as JSON to key its cache): one that is not a JSON object is 400 from both tiers, any other
    415."""
    ctype = request.headers.get("content-type", "")
    media = ctype.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        if not media:
            _json_object(await request.body())
        raise Problem(
            415,
            "unsupported-media-type",
            f"send the body as application/json (got {media or 'no content type'!r})",
        )
    return parse_json(await request.body(), model)


def _json_object(body: bytes) -> None:
    """400 unless `body` is a JSON object."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Problem(400, "malformed-request", "request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise Problem(400, "malformed-request", "request body must be a JSON object")


def parse_json(body: bytes, model: type[M]) -> M:
    """Validate a JSON body: 400 when it is not a JSON object, 422 naming the fields
    otherwise."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if any(e["type"] == "json_invalid" for e in errors):
            raise Problem(400, "malformed-request", "request body is not valid JSON") from None
        if any(not e["loc"] and e["type"] == "model_type" for e in errors):
            raise Problem(400, "malformed-request", "request body must be a JSON object") from None
        raise validation_problem(list(errors)) from None


def check_texts(texts: Sequence[str], settings: OriginSettings, field: str = "input") -> None:
    """Count and size limits for text inputs (422)."""
    if not texts:
        raise Problem(
            422,
            "invalid-request",
            f"{field} must not be empty",
            errors=[{"field": field, "message": "empty"}],
        )
    if len(texts) > settings.max_inputs_per_request:
        raise Problem(
            422,
            "too-many-inputs",
            f"{len(texts)} inputs; at most {settings.max_inputs_per_request} per request",
            errors=[{"field": field, "message": "too many inputs"}],
        )
    for i, text in enumerate(texts):
        if not text:
            raise Problem(
                422,
                "invalid-request",
                f"{field}[{i}] is an empty string",
                errors=[{"field": f"{field}.{i}", "message": "empty string"}],
            )
        if len(text) > settings.max_input_chars:
            raise Problem(
                422,
                "input-too-long",
                f"{field}[{i}] has {len(text)} characters; at most {settings.max_input_chars}",
                errors=[{"field": f"{field}.{i}", "message": "too long"}],
            )


def caller_subject(request: Request) -> str | None:
    """The verified subject the request comes from (`"sub:..."`, `"ip:..."`), as the origin's
    caller check stored it in `request.state.caller_subject`; None when there is none (those
    requests are batched as one anonymous subject)."""
    subject = getattr(request.state, "caller_subject", None)
    return subject if isinstance(subject, str) else None


def require_task(served: ServedVersion, *tasks: str) -> None:
    if served.pipeline.task not in tasks:
        raise Problem(
            422,
            "wrong-task",
            f"model {served.name!r} is a {served.pipeline.task} model; this endpoint needs "
            f"{' or '.join(tasks)}",
        )


async def run_on_model(
    registry: ModelRegistry,
    name: str,
    version: int | None,
    prepare: Callable[[ServedVersion], Any],
    subject: str | None = None,
) -> tuple[ServedVersion, Any, list[Any]]:
    """Resolve the model, build items with `prepare(served)`, run them through its batcher
    as `subject`'s (fair scheduling: `origin.engine.batcher`).

    `prepare` returns (items, extra); if the version is swapped out between resolution and
    queueing (hot reload), resolve again once. Queue full -> 429 with Retry-After, checked
    before `prepare` too: a subject over its share of a full queue costs no tokenizing or
    image decoding.
    """
    for attempt in range(3):
        served = registry.resolve(name, version)
        tracing.tag_model(served.name, served.version)
        try:
            served.batcher.check_admission(subject)
            items, extra = await prepare(served)
            results = await served.batcher.submit(items, subject)
        except BatcherClosed:
            if attempt == 2:
                raise Problem(
                    503, "unavailable", "model is reloading; retry", headers={"Retry-After": "1"}
                ) from None
            await asyncio.sleep(0)
            continue
        except QueueFull as full:
            registry.metrics.rejected.labels(name).inc()
            raise Problem(
                429,
                "overloaded",
                f"model {name!r} is busy; retry after {full.retry_after} s",
                headers={"Retry-After": str(full.retry_after)},
            ) from None
        registry.metrics.inputs.labels(name, str(served.version)).inc(len(items))
        return served, extra, results
    raise AssertionError("unreachable")


async def tokenize(served: ServedVersion, texts: Sequence[str], field: str = "input") -> Any:
    """Tokenize (in a thread when large); too-long input in reject mode -> 422."""
    pipeline: Any = served.pipeline
    try:
        with tracing.child_span("tokenize") as span:
            if sum(len(t) for t in texts) <= _INLINE_TOKENIZE_CHARS:
                items = pipeline.tokenize(texts)
            else:
                items = await asyncio.to_thread(pipeline.tokenize, texts)
            if span is not None:
                span.set_attributes(
                    {
                        tracing.MODEL_NAME: served.name,
                        tracing.MODEL_VERSION: str(served.version),
                        "outpost.inputs": len(texts),
                        "outpost.tokens": sum(item.cost for item in items),
                    }
                )
            return items
    except InputError as exc:
        loc = f"{field}.{exc.index}" if exc.index is not None else field
        raise Problem(
            422, "input-too-long", exc.message, errors=[{"field": loc, "message": "too long"}]
        ) from None


def embedding_items(vectors: Sequence[np.ndarray], encoding_format: str) -> list[dict[str, Any]]:
    """OpenAI's embedding objects: float lists, or base64 of little-endian float32."""
    if encoding_format == "base64":
        return [
            {
                "object": "embedding",
                "index": i,
                "embedding": base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode(),
            }
            for i, v in enumerate(vectors)
        ]
    return [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]


def classification_items(
    probs: Sequence[np.ndarray], labels: Sequence[str], top_k: int
) -> list[dict[str, Any]]:
    """Labels with their scores, best first, `top_k` of them, per input."""
    data = []
    for i, p in enumerate(probs):
        order = np.argsort(-p, kind="stable")[:top_k]
        data.append(
            {"index": i, "labels": [{"label": labels[j], "score": float(p[j])} for j in order]}
        )
    return data


async def tokenize_pairs(served: ServedVersion, query: str, documents: Sequence[str]) -> Any:
    """(query, document) pairs for a cross-encoder (in a thread when large); reject mode -> 422."""
    pipeline: Any = served.pipeline
    try:
        if len(query) * len(documents) + sum(len(d) for d in documents) <= _INLINE_TOKENIZE_CHARS:
            return pipeline.tokenize_pairs(query, documents)
        return await asyncio.to_thread(pipeline.tokenize_pairs, query, documents)
    except InputError as exc:
        loc = f"documents.{exc.index}" if exc.index is not None else "documents"
        raise Problem(
            422, "input-too-long", exc.message, errors=[{"field": loc, "message": "too long"}]
        ) from None


def parse_version(version: str) -> int:
    """A model version from a path or a gRPC request (`origin.strict.VERSION`); 404 otherwise."""
    number = strict.version(version)
    if number is None:
        shown = version[:20] + ("..." if len(version) > 20 else "")
        raise Problem(404, "version-not-found", f"version {shown!r} is not a version number")
    return number
