"""The platform interface: everything that differs between Workers and a local process."""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from typing import Any, Protocol

from edge.cache import CacheTier
from edge.config import EdgeConfig
from edge.core.request import UpstreamResponse
from edge.core.stats import Stats
from edge.limits.quota import QuotaStore
from edge.tracing import SpanSink


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
        *,
        read_timeout: float | None = None,
    ) -> UpstreamResponse:
        """Send one request and read its answer within `timeout` seconds, giving up when the
        origin sends nothing for `read_timeout` (its first byte included). Raise
        `edge.core.request.UpstreamError`: "connect" (no connection could be made),
        "disconnected" (the connection broke) or "timeout"."""
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

    def quota_store(self, config: EdgeConfig) -> QuotaStore | None:
        """The fleet-wide quota store `config.quota_store` names (None: this process's own
        buckets)."""
        ...

    def span_sink(self, config: EdgeConfig) -> SpanSink | None:
        """Where the edge's sampled spans go (None: nowhere; context is still propagated)."""
        ...

    def gzip(self, body: bytes, level: int) -> bytes:
        """`body` as a gzip member; `level` 1 (fastest) to 9 (smallest), as zlib's."""
        ...
