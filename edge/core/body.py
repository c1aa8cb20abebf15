"""What the edge reads of a cacheable request's body: the model it names, a digest for the cache
key, and the work it asks for, without changing a byte of what is forwarded.

- JSON (`application/json`, a `+json` type, or no Content-Type, as many clients send): parsed;
  the digest is that of its canonical form, so key order and whitespace do not matter.
- Triton's binary tensor extension on Open Inference Protocol infer (`Inference-Header-Content-
  Length: n`, any or no Content-Type): the first n bytes are the JSON inference header (read for
  the work), the rest raw tensor bytes; the digest covers n and every byte.
- A `Content-Encoding` of gzip or deflate on Open Inference Protocol infer (the origin undoes
  it): inflated to at most the body limit to be read as above. Other routes take no encoding.
- Image and rerank requests: keyed on what was uploaded, whatever form carried it
  (`edge.core.uploads`).
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass
from typing import Any

from edge.cache import body_digest
from edge.core.uploads import UploadError, upload_key
from edge.core.work import Work, work_of

_OIP_INFER = "v2-infer"
UPLOAD_ROUTES = frozenset({"v1-images", "rerank"})
_DIGITS = frozenset("0123456789")


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    slug: str
    detail: str


@dataclass(frozen=True, slots=True)
class ReadBody:
    model: str  # the body's `model` member ("" when it names none)
    digest: bytes
    work: Work


def is_json(content_type: str | None) -> bool:
    """Whether a request's Content-Type is JSON (absent counts: clients often omit it)."""
    if content_type is None or content_type == "application/json":
        return True
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _inflate(body: bytes, coding: str, limit: int) -> bytes | Refusal:
    wbits = {"gzip": 31, "x-gzip": 31, "deflate": 15}.get(coding)
    if wbits is None:
        return Refusal(415, "unsupported-media-type", "Content-Encoding must be gzip or deflate.")
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error:
        return Refusal(400, "malformed", f"The body is not valid {coding}.")
    if len(data) > limit or inflater.unconsumed_tail:
        return Refusal(413, "too-large", f"Request body exceeds {limit} bytes once inflated.")
    if not inflater.eof:
        return Refusal(400, "malformed", f"The body is truncated {coding}.")
    return data


def _json(data: bytes) -> dict[str, Any] | Refusal:
    try:
        payload = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return Refusal(400, "malformed", "The body is not valid JSON.")
    if not isinstance(payload, dict):
        return Refusal(400, "malformed", "The body must be a JSON object.")
    return payload


def read_body(
    body: bytes, headers: dict[str, str], route: str, path: str, limit: int
) -> ReadBody | Refusal:
    """The body of a cacheable request on `route` (`path`), or why the edge refuses it."""
    if route in UPLOAD_ROUTES:
        if headers.get("content-encoding", "identity").strip().lower() != "identity":
            return Refusal(
                415, "unsupported-media-type", "This endpoint takes no Content-Encoding."
            )
        try:
            key = upload_key(path, headers.get("content-type"), body)
        except UploadError as exc:
            return Refusal(exc.status, exc.slug, exc.detail)
        work = max(1, key.work)
        return ReadBody(key.model, key.digest, Work(work, work))
    oip = route == _OIP_INFER
    coding = headers.get("content-encoding", "").strip().lower()
    if coding and coding != "identity":
        if not oip:
            return Refusal(
                415, "unsupported-media-type", "This endpoint takes no Content-Encoding."
            )
        inflated = _inflate(body, coding, limit)
        if isinstance(inflated, Refusal):
            return inflated
        body = inflated
    framing = headers.get("inference-header-content-length")
    if oip and framing is not None:
        text = framing.strip()
        if not text or len(text) > 10 or not set(text) <= _DIGITS or int(text) > len(body):
            return Refusal(
                400,
                "malformed",
                "Inference-Header-Content-Length must be the length of the "
                "JSON header at the start of the body.",
            )
        size = int(text)
        header = _json(body[:size])
        if isinstance(header, Refusal):
            return Refusal(400, "malformed", "The inference header is not a JSON object.")
        digest = hashlib.sha256(b"%d\x00%s" % (size, body)).digest()
        return ReadBody("", digest, work_of(header, route))
    content_type = headers.get("content-type")
    if not is_json(content_type) and not (
        oip and content_type.split(";")[0].strip().lower() == "application/octet-stream"
    ):
        return Refusal(415, "unsupported-media-type", "Send application/json.")
    payload = _json(body)
    if isinstance(payload, Refusal):
        return payload
    named = payload.get("model")
    return ReadBody(
        named if isinstance(named, str) else "", body_digest(payload), work_of(payload, route)
    )
