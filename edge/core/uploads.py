"""Cache keys and work counts for the image and rerank routes (stdlib only: runs in Pyodide).

An image request carries its pictures as multipart/form-data files or as base64 / data URLs in
JSON. Keying the cache on the body's bytes would miss every time for multipart (each client
picks a new random boundary) and whenever two clients encode one picture differently. So the
key is a digest of what was uploaded: each image's bytes are decoded and hashed on their own
(sha256), and the key is the sha256 of a canonical JSON of the route, the request's other
fields (model, top_k, encoding_format, ...) and those image digests, in order. The same
photo with the same parameters gets one key whichever form carried it, and the key never holds
the upload itself. A rerank body is keyed on its canonical JSON, with documents given as
objects (`{"text": ...}`) reduced to their text, which is all the origin reads of them.

`upload_key(path, content_type, body)` returns the model named in the body, the digest and the
work the request asks for (images or documents, for quotas), or raises `UploadError` carrying
the status, problem slug and detail the edge should answer with.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from typing import Any

IMAGE_PATHS = frozenset({"/v1/images/embeddings", "/v1/images/classifications"})
RERANK_PATHS = frozenset({"/v1/rerank", "/v2/rerank"})
MAX_PARTS = 64  # form parts parsed at most (the origin takes at most 16 images by default)
_HEADERS = BytesHeaderParser(policy=policy.HTTP)
_DATA_URL = re.compile(r"data:[\w.+/-]*(?:;[\w.+-]+=[\w.+-]+)*;base64,", re.ASCII)

# What the edge's route table needs for these endpoints (merge into edge/routes.py's _TABLE):
# (path pattern, name, methods, scope, rate class, cacheable). "images" is a new rate class:
# one request may carry 16 photos of several MB, so it deserves its own, lower, rate.
ROUTES: tuple[tuple[str, str, tuple[str, ...], str, str, bool], ...] = (
    (
        r"/v1/images/(?:embeddings|classifications)",
        "v1-images",
        ("POST",),
        "inference",
        "images",
        True,
    ),
    (r"/v[12]/rerank", "rerank", ("POST",), "inference", "inference", True),
)


class UploadError(ValueError):
    """A body the edge answers itself: `status`, problem `slug` and `detail`."""

    def __init__(self, status: int, slug: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail


@dataclass(frozen=True, slots=True)
class UploadKey:
    """What the cache key and the quota need from an upload or rerank body."""

    model: str
    digest: bytes  # sha256 of the canonical request (32 bytes)
    work: int  # images, or documents to rank


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _param(value: Any) -> str:
    """Form fields are text: JSON scalars are keyed as the text a form would carry."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def image_digest(value: Any) -> str:
    """sha256 (hex) of one image given as base64 text or a data URL."""
    if not isinstance(value, str):
        raise UploadError(422, "invalid-image-data", "input: images must be base64 text")
    m = _DATA_URL.match(value)
    text = value[m.end() :] if m else value
    if value.startswith("data:") and m is None:
        raise UploadError(422, "invalid-image-data", "input: a data URL must be base64")
    text = "".join(text.split())
    text += "=" * (-len(text) % 4)
    try:
        raw = (
            base64.urlsafe_b64decode(text)
            if "-" in text or "_" in text
            else base64.b64decode(text, validate=True)
        )
    except (binascii.Error, ValueError):
        raise UploadError(422, "invalid-image-data", "input: not valid base64") from None
    return hashlib.sha256(raw).hexdigest()


def _media(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise UploadError(400, "malformed", "The body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise UploadError(400, "malformed", "The body must be a JSON object.")
    return payload


def _form(content_type: str, body: bytes) -> tuple[dict[str, str], list[str]]:
    """A multipart/form-data body's text fields and its files' digests, in order.

    The body is split on its boundary with bytes.split (C speed: the stdlib's MIME parser reads
    line by line, about 0.5 s of CPU for 10 MB); each part's headers are read with the stdlib's
    header parser."""
    ctype = EmailMessage()
    ctype["content-type"] = content_type
    boundary = ctype.get_boundary()
    if not boundary:
        raise UploadError(400, "malformed", "The multipart body has no boundary.")
    chunks = body.split(b"--" + boundary.encode("latin-1"))
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise UploadError(400, "malformed", "The multipart body is not closed by its boundary.")
    fields: dict[str, str] = {}
    files: list[str] = []
    for n, chunk in enumerate(chunks[1:-1]):
        if n >= MAX_PARTS:
            raise UploadError(422, "too-many-inputs", f"At most {MAX_PARTS} form parts.")
        head, sep, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep or not data.endswith(b"\r\n"):
            raise UploadError(400, "malformed", "A multipart part is malformed.")
        data = data[:-2]
        headers = _HEADERS.parsebytes(head + b"\r\n\r\n")
        name = headers.get_param("name", header="content-disposition")
        if headers.get_filename() is not None:
            files.append(hashlib.sha256(data).hexdigest())
        elif isinstance(name, str):
            fields[name] = data.decode("utf-8", "replace")
    return fields, files


def upload_key(path: str, content_type: str | None, body: bytes) -> UploadKey:
    """The model, cache digest and work of an image or rerank request (see the module doc)."""
    media = _media(content_type)
    if path in RERANK_PATHS:
        if media != "application/json" and not media.endswith("+json"):
            raise UploadError(415, "unsupported-media-type", "Send application/json.")
        payload = _json_body(body)
        docs = payload.get("documents")
        if isinstance(docs, list):
            payload["documents"] = [
                d["text"] if isinstance(d, dict) and isinstance(d.get("text"), str) else d
                for d in docs
            ]
        work = len(docs) if isinstance(docs, list) else 0
        model = payload.get("model")
        canonical = {"route": path, "body": payload}
    elif path in IMAGE_PATHS:
        if media == "multipart/form-data":
            fields, images = _form(content_type or "", body)
            params = {k: v for k, v in fields.items() if k != "input"}
        elif media == "application/json" or media.endswith("+json"):
            payload = _json_body(body)
            value = payload.get("input")
            values = [value] if isinstance(value, str) else value
            if not isinstance(values, list):
                raise UploadError(422, "invalid-request", "input: send base64 images")
            images = [image_digest(v) for v in values]
            params = {k: _param(v) for k, v in payload.items() if k != "input" and v is not None}
        else:
            raise UploadError(
                415, "unsupported-media-type", "Send multipart/form-data or application/json."
            )
        work, model = len(images), params.get("model")
        canonical = {"route": path, "params": params, "images": images}
    else:
        raise ValueError(f"{path} is not an upload route")
    return UploadKey(
        model if isinstance(model, str) else "",
        hashlib.sha256(_canonical(canonical)).digest(),
        work,
    )
