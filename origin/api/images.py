"""`/v1/images/embeddings` and `/v1/images/classifications`: photos in, vectors or labels out.

Each takes the images as multipart/form-data (files, plus `model`, `top_k` or
`encoding_format` as text fields) or as JSON (`input`: base64 or data URLs, one or a list).
Answers have the shape of `/v1/embeddings` and `/v1/classifications`, with `usage.images`.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from origin.api.common import (
    caller_subject,
    classification_items,
    embedding_items,
    json_response,
    parse_body,
    require_task,
    run_on_model,
)
from origin.api.uploads import check_count, image_bytes, read_form
from origin.problems import Problem, validation_problem
from origin.repository.registry import ServedVersion

router = APIRouter(prefix="/v1/images", tags=["images"])


class ImageRequest(BaseModel):
    """The JSON body (or the form's text fields) of an image request."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    input: str | list[str] | None = Field(
        None, description="Images as base64 or data URLs (JSON); multipart sends files instead."
    )
    top_k: int | None = Field(None, ge=1, description="Classifications: labels returned.")
    encoding_format: Literal["float", "base64"] = Field("float", description="Embeddings.")


async def read_images(request: Request) -> tuple[ImageRequest, list[bytes]]:
    """The request's parameters and image bytes, from a multipart or a JSON body."""
    settings = request.app.state.settings
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == "multipart/form-data":
        fields, blobs = await read_form(request, settings)
        try:
            req = ImageRequest.model_validate({k: v for k, v in fields.items() if k != "input"})
        except ValidationError as exc:
            errors = list(exc.errors(include_url=False, include_input=False))
            raise validation_problem(errors) from None
        return req, blobs
    if media != "application/json" and not media.endswith("+json"):
        raise Problem(
            415,
            "unsupported-media-type",
            "send images as multipart/form-data files, or as base64 in application/json "
            f"(got {media or 'no content type'!r})",
        )
    req = await parse_body(request, ImageRequest)
    values = [req.input] if isinstance(req.input, str) else (req.input or [])
    check_count(len(values), settings, "input")
    field = "input" if isinstance(req.input, str) else "input.{}"
    return req, [image_bytes(v, field.format(i)) for i, v in enumerate(values)]


async def run_images(
    state: Any,
    model: str,
    version: int | None,
    blobs: list[bytes],
    task: str,
    field: str,
    subject: str | None = None,
) -> tuple[ServedVersion, list[Any]]:
    """Decode `blobs` for the model (in the decode pool) and run them through its batcher as
    `subject`'s. `state` is the app's state (registry, settings, decoder), whatever the
    transport."""
    settings = state.settings
    decoder = state.decoder

    async def prepare(served: ServedVersion) -> tuple[list[Any], None]:
        require_task(served, task)
        items = await decoder.prepare(
            served.pipeline.prepare,  # type: ignore[union-attr]
            blobs,
            settings.max_image_pixels,
            field,
        )
        return items, None

    served, _, results = await run_on_model(state.registry, model, version, prepare, subject)
    return served, results


async def _run_route(
    request: Request, req: ImageRequest, blobs: list[bytes], task: str
) -> tuple[ServedVersion, list[Any]]:
    """`run_images` for a `/v1/images` route: errors name the upload's form field."""
    multipart = request.headers.get("content-type", "").startswith("multipart/")
    field = "file" if multipart else "input"
    state = request.app.state
    return await run_images(state, req.model, None, blobs, task, field, caller_subject(request))


@router.post("/embeddings")
async def image_embeddings(request: Request) -> Response:
    """One vector per image, in the shape of `/v1/embeddings`."""
    req, blobs = await read_images(request)
    served, vectors = await _run_route(request, req, blobs, "image-embeddings")
    body = {
        "object": "list",
        "data": embedding_items(vectors, req.encoding_format),
        "model": served.name,
        "model_version": served.version,
        "usage": {"images": len(blobs), "prompt_tokens": 0, "total_tokens": 0},
    }
    return json_response(body, served.headers)


@router.post("/classifications")
async def image_classifications(request: Request) -> Response:
    """Labels with softmax scores per image, best first, in the shape of `/v1/classifications`."""
    req, blobs = await read_images(request)
    served, probs = await _run_route(request, req, blobs, "image-classification")
    labels: list[str] = served.pipeline.labels  # type: ignore[union-attr]
    top_k = req.top_k or served.config.top_k or len(labels)
    body = {
        "object": "list",
        "model": served.name,
        "model_version": served.version,
        "data": classification_items(probs, labels, top_k),
        "usage": {"images": len(blobs)},
    }
    return json_response(body, served.headers)
