"""The platform interface: everything that differs between Workers and a local process."""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from edge.messages import UpstreamResponse
from edge.stats import Stats


@dataclass(slots=True)
class CachedResponse:
    """A response stored by the edge cache (either tier)."""

    status: int
    headers: dict[str, str]
    body: bytes
    stored_at: float
    fresh_until: float
    stale_until: float
    etag: str = ""
    gzipped: bytes | None = None
    # The local server's hit answer for this entry, encoded once (`edge.hitpath.EncodedHit`).
    encoded_hit: Any = None


class CacheTier(Protocol):
    """An optional second, shared cache tier (Cloudflare's Cache API in Workers)."""

    async def get(self, key: str) -> CachedResponse | None: ...

    async def put(self, key: str, entry: CachedResponse) -> None: ...


class Platform(Protocol):
    """What the edge needs from its host runtime; the edge logic never imports httpx or js."""

    name: str
    cache_tier2: CacheTier | None

    async def fetch(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float,
    ) -> UpstreamResponse:
        """Send one request; raise `edge.messages.UpstreamError` on connect failure/timeout."""
        ...

    async def verify_signature(
        self, alg: str, jwk: Mapping[str, Any], signing_input: bytes, signature: bytes
    ) -> bool:
        """True iff `signature` over `signing_input` verifies with public `jwk` under `alg`."""
        ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run background work that must not delay the response (ctx.waitUntil in Workers)."""
        ...

    def now(self) -> float:
        """Wall-clock seconds (used for token times and cache ages)."""
        ...

    def monotonic(self) -> float:
        """Monotonic seconds (used for rate limits, backoff and health timers)."""
        ...

    def metrics_text(self, stats: Stats) -> tuple[str, bytes] | None:
        """(content type, body) for `/metrics`, or None where metrics are not served."""
        ...

    def gzip(self, body: bytes, level: int) -> bytes:
        """`body` as a gzip member; `level` 1 (fastest) to 9 (smallest), as zlib's."""
        ...
