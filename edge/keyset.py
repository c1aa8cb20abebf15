"""A remote JSON Web Key Set (RFC 7517), cached at the edge.

Fetched lazily through the platform, trusted for a TTL, refetched on an unknown `kid` at a
bounded rate (a client choosing `kid`s cannot make the edge hammer the issuer), one fetch at a
time, and kept (last good copy) when the issuer is unreachable or answers nonsense.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

from edge.runtime.base import Platform

log = logging.getLogger("edge.keyset")

MAX_DOCUMENT_BYTES = 256 << 10  # Google's key sets are a few KB
MAX_KEYS = 64


class KeySetCache:
    def __init__(
        self,
        url: str,
        platform: Platform,
        *,
        ttl: float,
        min_refresh_interval: float,
        timeout: float = 5.0,
    ) -> None:
        self.url = url
        self._platform = platform
        self._ttl = ttl
        self._min_interval = min_refresh_interval
        self._timeout = timeout
        self._keys: dict[str, dict[str, Any]] = {}
        self._loaded_at: float | None = None  # monotonic time of the last good fetch
        self._tried_at: float | None = None  # monotonic time of the last attempt of any kind
        self._inflight: asyncio.Future[None] | None = None
        self.fetches = 0

    @property
    def loaded(self) -> bool:
        """Whether a key set was ever fetched successfully."""
        return self._loaded_at is not None

    async def key(self, kid: str) -> dict[str, Any] | None:
        """The key named `kid`, fetching the set first when it is stale or lacks that kid."""
        if self._inflight is not None:
            await asyncio.shield(self._inflight)
        now = self._platform.monotonic()
        recently = self._tried_at is not None and now - self._tried_at < self._min_interval
        stale = self._loaded_at is None or now - self._loaded_at >= self._ttl
        if (stale and (self._tried_at is None or now - self._tried_at >= 1.0)) or (
            kid not in self._keys and not recently
        ):
            await self._refresh()
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        if self._inflight is not None:
            await asyncio.shield(self._inflight)
            return
        self._inflight = asyncio.get_running_loop().create_future()
        try:
            await self._load()
        finally:
            self._inflight.set_result(None)
            self._inflight = None

    async def _load(self) -> None:
        self._tried_at = self._platform.monotonic()
        self.fetches += 1
        try:
            resp = await self._platform.fetch(
                "GET", self.url, {"accept": "application/json"}, None, self._timeout
            )
            if resp.status != 200:
                raise ValueError(f"HTTP {resp.status}")
            if len(resp.body) > MAX_DOCUMENT_BYTES:
                raise ValueError("key set too large")
            doc = json.loads(resp.body)
            found = doc.get("keys") if isinstance(doc, Mapping) else None
            if not isinstance(found, list):
                raise ValueError("no 'keys' list")
            keys = {
                k["kid"]: dict(k)
                for k in found[:MAX_KEYS]
                if isinstance(k, Mapping) and isinstance(k.get("kid"), str)
            }
        except Exception as exc:  # network, JSON or shape: keep the last good keys
            log.warning("key set fetch failed for %s: %s", self.url, str(exc)[:200])
            return
        self._keys = keys
        self._loaded_at = self._platform.monotonic()
