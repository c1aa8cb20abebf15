"""The edge response cache: bounded, TTL from the origin's Cache-Control, stale-if-error,
coalesced misses, and an optional second tier (Cloudflare's Cache API in Workers)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from typing import Any

from cachetools import TLRUCache

from edge.config import EdgeConfig
from edge.platform.base import CachedResponse, CacheTier

# Response headers worth replaying from a cached entry.
KEPT_HEADERS = ("content-type", "x-model-name", "x-model-version", "cache-control", "etag")


def parse_cache_control(value: str | None) -> dict[str, str | None]:
    """`max-age=60, no-store` -> {"max-age": "60", "no-store": None}."""
    out: dict[str, str | None] = {}
    if not value:
        return out
    for part in value.split(","):
        name, eq, arg = part.strip().partition("=")
        if name:
            out[name.lower()] = arg.strip().strip('"') if eq else None
    return out


def canonical_json(obj: Any) -> bytes:
    """One byte string per JSON value, whatever the key order or whitespace of the request."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def cache_key(pool: str, model: str, version: str, route: str, body: bytes, accept: str) -> str:
    h = hashlib.sha256()
    for part in (pool, model, version, route, accept):
        h.update(part.encode())
        h.update(b"\x00")
    h.update(body)
    return h.hexdigest()


def client_bypass(cache_control: str | None, pragma: str | None) -> tuple[bool, bool]:
    """(skip reading the cache, skip storing the answer) for a client's request headers."""
    cc = parse_cache_control(cache_control)
    no_store = "no-store" in cc
    no_cache = no_store or "no-cache" in cc or (pragma or "").lower() == "no-cache"
    return no_cache, no_store


class EdgeCache:
    """In-memory tier (cachetools TLRU keyed by sha256) plus optional tier 2."""

    def __init__(
        self, config: EdgeConfig, clock: Callable[[], float], tier2: CacheTier | None
    ) -> None:
        self._config = config
        self._clock = clock
        self._tier2 = tier2
        self._entries: TLRUCache[str, CachedResponse] = TLRUCache(
            maxsize=config.cache_max_entries,
            ttu=lambda _k, v, _now: v.stale_until,
            timer=clock,
        )
        self.inflight: dict[str, asyncio.Future[Any]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> CachedResponse | None:
        """The entry (fresh or still within its stale bound), from tier 1 then tier 2."""
        entry = self._entries.get(key)
        if entry is None and self._tier2 is not None:
            entry = await self._tier2.get(key)
            if entry is not None and entry.stale_until > self._clock():
                self._entries[key] = entry
            else:
                entry = None
        return entry

    def is_fresh(self, entry: CachedResponse) -> bool:
        return self._clock() < entry.fresh_until

    def entry_for(self, status: int, headers: dict[str, str], body: bytes) -> CachedResponse | None:
        """A cache entry for an origin answer, or None if it must not be stored."""
        if status != 200 or len(body) > self._config.cache_max_body_bytes:
            return None
        cc = parse_cache_control(headers.get("cache-control"))
        if "no-store" in cc or "private" in cc or "no-cache" in cc:
            return None
        raw_age = cc.get("s-maxage") or cc.get("max-age")
        try:
            ttl = min(float(raw_age or 0), self._config.cache_max_ttl_seconds)
        except ValueError:
            return None
        if ttl <= 0:
            return None
        try:
            stale = float(cc.get("stale-if-error") or self._config.stale_if_error_seconds)
        except ValueError:
            stale = self._config.stale_if_error_seconds
        stale = min(stale, self._config.stale_if_error_seconds)
        now = self._clock()
        kept = {k: headers[k] for k in KEPT_HEADERS if k in headers}
        return CachedResponse(
            status=status,
            headers=kept,
            body=body,
            stored_at=now,
            fresh_until=now + ttl,
            stale_until=now + ttl + stale,
            etag=headers.get("etag", ""),
        )

    def put(self, key: str, entry: CachedResponse) -> None:
        self._entries[key] = entry

    async def put_tier2(self, key: str, entry: CachedResponse) -> None:
        if self._tier2 is not None:
            await self._tier2.put(key, entry)
