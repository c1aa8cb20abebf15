"""Finishing a response, in small steps run in this order on every answer: stamping what every
answer carries, the protocol's error member on the edge's own problems, CORS, conditional GETs
(ETag / 304) and compression."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from edge.cache import CachedResponse
from edge.config import EdgeConfig
from edge.core.request import EdgeRequest, EdgeResponse

EXPOSED = (
    "x-request-id, x-cache, x-model-name, x-model-version, etag, retry-after, "
    "ratelimit, ratelimit-policy"
)
# Problem answers are not compressed: they are small, and some clients (tritonclient) read an
# error body without undoing its content coding.
_COMPRESSIBLE = ("application/json", "text/")

Gzip = Callable[[bytes, int], bytes]


def _vary(headers: dict[str, str], name: str) -> None:
    headers["vary"] = f"{headers['vary']}, {name}" if "vary" in headers else name


def stamp(resp: EdgeResponse, rid: str, extra: dict[str, str]) -> None:
    """The request id, and the rate-limit headers of the request's decision."""
    resp.headers["x-request-id"] = rid
    if extra:
        resp.headers.update(extra)


class Cors:
    """CORS for the configured origins (`*` for any): no credentials are ever allowed."""

    def __init__(self, origins: tuple[str, ...]) -> None:
        self._any = "*" in origins
        self._allowed = frozenset(origins)

    def allowed_origin(self, req: EdgeRequest) -> str | None:
        origin = req.headers.get("origin")
        if not origin or not (self._any or origin in self._allowed):
            return None
        return origin

    def preflight(self, req: EdgeRequest) -> EdgeResponse:
        """The answer to a preflight: the allowed methods and headers, or nothing for an origin
        that is not allowed (the browser then refuses the real request)."""
        headers: dict[str, str] = {"cache-control": "no-store"}
        if self.allowed_origin(req):
            headers.update(
                {
                    "access-control-allow-methods": "GET, POST, OPTIONS",
                    "access-control-allow-headers": req.headers.get(
                        "access-control-request-headers", "authorization, content-type"
                    ),
                    "access-control-max-age": "600",
                }
            )
        return EdgeResponse(204, headers, b"")

    def apply(self, req: EdgeRequest, resp: EdgeResponse) -> None:
        origin = self.allowed_origin(req)
        if not origin:
            return
        h = resp.headers
        h["access-control-allow-origin"] = "*" if self._any else origin
        h["access-control-expose-headers"] = EXPOSED
        if not self._any:
            _vary(h, "origin")


def conditional(req: EdgeRequest, resp: EdgeResponse) -> None:
    """A successful GET gets an ETag (the origin's, or a weak one from the body), and becomes a
    bodiless 304 when the client's If-None-Match lists it (RFC 9110 §13.1.2)."""
    if req.method != "GET" or resp.status != 200:
        return
    h = resp.headers
    etag = h.get("etag") or f'W/"{hashlib.sha256(resp.body).hexdigest()[:24]}"'
    h["etag"] = etag
    inm = req.headers.get("if-none-match")
    if inm and (inm.strip() == "*" or etag in [t.strip() for t in inm.split(",")]):
        resp.status = 304
        resp.body = b""
        h.pop("content-type", None)


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding field value allows gzip (RFC 9110 §12.5.3): `gzip` (or its
    alias `x-gzip`) with a non-zero weight, or else `*` with a non-zero weight."""
    accept_encoding = accept_encoding.lower()
    if "gzip" not in accept_encoding and "*" not in accept_encoding:
        return False
    star: bool | None = None
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip()
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    weight = float(value.strip())
                except ValueError:
                    weight = 0.0
        if coding in ("gzip", "x-gzip"):
            return weight > 0
        if coding == "*":
            star = weight > 0
    return bool(star)


class Compressor:
    """gzip for clients that accept it, for bodies worth it; a cache entry's gzip copy is made
    once, on its first hit that accepts gzip."""

    def __init__(self, config: EdgeConfig, gzip: Gzip) -> None:
        self._min = config.gzip_min_bytes
        self._level = config.gzip_level
        self._gzip = gzip

    def apply(
        self, req: EdgeRequest, resp: EdgeResponse, entry: CachedResponse | None = None
    ) -> None:
        h = resp.headers
        if (
            "content-encoding" in h
            or resp.status == 304
            or len(resp.body) < self._min
            or not h.get("content-type", "").startswith(_COMPRESSIBLE)
        ):
            return
        _vary(h, "accept-encoding")  # this answer's encoding depends on the request's field
        if not accepts_gzip(req.headers.get("accept-encoding", "")):
            return
        if entry is not None and entry.body is resp.body:
            if entry.gzipped is None:
                entry.gzipped = self._gzip(resp.body, self._level)
            resp.body = entry.gzipped
        else:
            resp.body = self._gzip(resp.body, self._level)
        h["content-encoding"] = "gzip"
