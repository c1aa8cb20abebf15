"""Image uploads: from multipart/form-data files, base64 or data URLs in JSON, or OIP BYTES
elements to bytes, then through a bounded pool of decoding threads to model items.

Decoding a phone photo takes tens of milliseconds and up to width x height x 3 bytes of memory,
so it never runs on the event loop, and a fixed number of threads (`image_decode_threads`)
bounds the memory in use; beyond `max_pending_images` waiting images a request gets 429.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.types import Scope

from origin.engine.images import ImageError
from origin.problems import Problem
from origin.repository.config import IMAGE_TASKS
from origin.settings import OriginSettings

_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)?((?:;[\w.+-]+=[\w.+-]+)*);base64,", re.ASCII)
_INFER_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/[^/]+)?/infer")
_FORM_FIELD_BYTES = 64 * 1024


def image_bytes(value: str | bytes, field: str) -> bytes:
    """An image as sent: raw bytes, a data URL (`data:image/jpeg;base64,...`) or base64 text
    (standard or URL-safe alphabet; line breaks allowed). 422 when it is neither."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    text = value
    if text.startswith("data:"):
        m = _DATA_URL.match(text)
        if m is None:
            raise Problem(
                422,
                "invalid-image-data",
                f"{field}: a data URL must be base64, like data:image/jpeg;base64,...",
                errors=[{"field": field, "message": "not a base64 data URL"}],
            )
        text = text[m.end() :]
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(_padded(text))
        return base64.b64decode(_padded(text), validate=True)
    except (binascii.Error, ValueError):
        try:  # line-wrapped base64 (as many encoders write it)
            return base64.b64decode(_padded("".join(text.split())), validate=True)
        except (binascii.Error, ValueError):
            pass
    raise Problem(
        422,
        "invalid-image-data",
        f"{field}: not valid base64 (send the image's bytes base64-encoded, or as a data URL)",
        errors=[{"field": field, "message": "not base64"}],
    )


def _padded(text: str) -> str:
    text = text.strip()
    return text + "=" * (-len(text) % 4)


def check_count(n: int, settings: OriginSettings, field: str) -> None:
    if n == 0:
        raise Problem(
            422,
            "invalid-request",
            f"{field}: no image was sent",
            errors=[{"field": field, "message": "empty"}],
        )
    if n > settings.max_images_per_request:
        raise Problem(
            422,
            "too-many-inputs",
            f"{n} images; at most {settings.max_images_per_request} per request",
            errors=[{"field": field, "message": "too many inputs"}],
        )


async def read_form(
    request: Request, settings: OriginSettings
) -> tuple[dict[str, str], list[bytes]]:
    """A multipart/form-data body: its text fields, and its files in the order sent."""
    form = await request.form(
        max_files=settings.max_images_per_request + 1,
        max_fields=32,
        max_part_size=_FORM_FIELD_BYTES,
    )
    try:
        fields: dict[str, str] = {}
        blobs: list[bytes] = []
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                blobs.append(await value.read())
            else:
                fields[name] = value
    finally:
        await form.close()
    check_count(len(blobs), settings, "file")
    return fields, blobs


def body_limit(settings: OriginSettings) -> Callable[[Scope], int]:
    """The body limit for a request: `max_image_body_bytes` on the image routes and for OIP
    inference on an image model, else `max_body_bytes`."""
    small, large = (
        settings.max_body_bytes,
        max(settings.max_image_body_bytes, settings.max_body_bytes),
    )

    def limit(scope: Scope) -> int:
        path: str = scope.get("path", "")
        if path.startswith("/v1/images/"):
            return large
        m = _INFER_PATH.fullmatch(path)
        if m is not None:
            registry = getattr(getattr(scope.get("app"), "state", None), "registry", None)
            entry = registry.models.get(m.group(1)) if registry is not None else None
            if entry is not None and entry.config is not None and entry.config.task in IMAGE_TASKS:
                return large
        return small

    return limit


class DecodePool:
    """Threads that decode and preprocess images, with a bound on the images waiting."""

    def __init__(self, threads: int, max_pending: int) -> None:
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="image")
        self._max_pending = max_pending
        self.pending = 0

    async def prepare(
        self,
        prepare: Callable[[bytes, int], Any],
        blobs: Sequence[bytes],
        max_pixels: int,
        field: str,
    ) -> list[Any]:
        """`prepare(blob, max_pixels)` for every blob in the pool; the first image error (in
        input order) becomes its problem, naming the input."""
        n = len(blobs)
        if self.pending + n > self._max_pending:
            raise Problem(
                429,
                "overloaded",
                f"{self.pending} images are waiting to be decoded; retry shortly",
                headers={"Retry-After": "1"},
            )
        loop = asyncio.get_running_loop()
        self.pending += n
        try:
            results = await asyncio.gather(
                *(loop.run_in_executor(self._executor, prepare, b, max_pixels) for b in blobs),
                return_exceptions=True,
            )
        finally:
            self.pending -= n
        for i, result in enumerate(results):
            if isinstance(result, ImageError):
                where = f"{field}.{i}" if n > 1 else field
                raise Problem(
                    result.status,
                    result.slug,
                    f"{where}: {result.message}",
                    errors=[{"field": where, "message": result.message}],
                )
            if isinstance(result, BaseException):
                raise result
        return list(results)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
