"""The edge response cache: bounded, TTL from the origin's Cache-Control, stale-if-error,
coalesced misses, and an optional second tier (Cloudflare's Cache API in Workers, provided by
the platform)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cachetools import LRUCache

from edge.config import EdgeConfig


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
    gzipped: bytes | None = None  # the body gzipped, made on the first hit that accepts gzip


class CacheTier(Protocol):
    """An optional second, shared cache tier (Cloudflare's Cache API in Workers)."""

    async def get(self, key: str) -> CachedResponse | None: ...

    async def put(self, key: str, entry: CachedResponse) -> None: ...


# Response headers worth replaying from a cached entry.
KEPT_HEADERS = (
    "content-type",
    "x-model-name",
    "x-model-version",
    "cache-control",
    "etag",
    "inference-header-content-length",  # Triton's binary tensor framing of the answer
)


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


def make_private(value: str | None) -> str:
    """`value` for a response only its own caller may reuse: `public` becomes `private`, the
    rest (max-age, stale-if-error) kept, so no shared cache downstream stores one subject's
    answer for another."""
    parts = [p.strip() for p in (value or "").split(",") if p.strip()]
    kept = [p for p in parts if p.split("=", 1)[0].strip().lower() not in ("public", "private")]
    return ", ".join(["private", *kept])


def canonical_json(obj: Any) -> bytes:
    """One byte string per JSON value, whatever the key order or whitespace of the request.
    A string may hold a lone surrogate (`"\\ud800"` is valid JSON, not valid Unicode): it keys
    as its own bytes, and the origin judges the body."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8", "surrogatepass")


# (pool, model, version, route, accept, sha256 of the canonical request body)
# (pool, model, version, route, accept, sha256 of the canonical request body, owner): the owner
# is "" for a shared entry, the subject for a model whose cache scope is `subject`.
CacheKey = tuple[str, str, str, str, str, bytes, str]


def body_digest(payload: Any) -> bytes:
    """sha256 of a request body's canonical JSON: equal for equal JSON values, and small enough
    to keep in a key (the body itself may be up to `max_request_bytes`)."""
    return hashlib.sha256(canonical_json(payload)).digest()


def cache_key(
    pool: str, model: str, version: str, route: str, digest: bytes, accept: str, owner: str = ""
) -> CacheKey:
    """The tier-1 key: a tuple, so a hit costs a tuple hash rather than a sha256."""
    return (pool, model, version, route, accept, digest, owner)


def with_version(key: CacheKey, version: str) -> CacheKey:
    """The same key for another model version (the one the origin reported serving)."""
    pool, model, _, route, accept, digest, owner = key
    return (pool, model, version, route, accept, digest, owner)


def with_owner(key: CacheKey, owner: str) -> CacheKey:
    """The same key for another owner: a subject's own entry, or "" for a shared one."""
    return (*key[:6], owner)  # type: ignore[return-value]


def tier2_key(key: CacheKey) -> str:
    """A key as hex text, for tiers keyed by strings (the Cache API builds a URL from it)."""
    h = hashlib.sha256()
    for part in key[:5]:
        h.update(part.encode())
        h.update(b"\x00")
    h.update(key[5])
    h.update(b"\x00" + key[6].encode())
    return h.hexdigest()


def client_bypass(cache_control: str | None, pragma: str | None) -> tuple[bool, bool]:
    """(skip reading the cache, skip storing the answer) for a client's request headers."""
    cc = parse_cache_control(cache_control)
    no_store = "no-store" in cc
    no_cache = no_store or "no-cache" in cc or (pragma or "").lower() == "no-cache"
    return no_cache, no_store


# The key, the entry object and its kept headers, roughly.
ENTRY_OVERHEAD_BYTES = 512


def entry_size(entry: CachedResponse) -> int:
    """What an entry may cost in memory: its body twice (the gzip copy made on first demand is
    never larger) plus bookkeeping. Counted up front, so the bound holds once gzip copies exist."""
    return 2 * len(entry.body) + ENTRY_OVERHEAD_BYTES


class EdgeCache:
    """In-memory tier plus an optional tier 2 (Cloudflare's Cache API in Workers).

    Tier 1 is cachetools' LRUCache bounded in bytes (`cache_max_bytes`), so memory stays bounded
    whatever the response sizes. Freshness is per entry (the origin's Cache-Control), checked on
    lookup; cachetools' TLRUCache would do that too, but its per-operation expiry scan was the
    biggest single cost of a cache hit when measured, so expired entries here simply age out of
    the LRU order or are dropped when looked up."""

    def __init__(
        self, config: EdgeConfig, clock: Callable[[], float], tier2: CacheTier | None
    ) -> None:
        self._config = config
        self._clock = clock
        self._tier2 = tier2
        self._entries: LRUCache[CacheKey, CachedResponse] = LRUCache(
            maxsize=config.cache_max_bytes, getsizeof=entry_size
        )
        self.inflight: dict[CacheKey, asyncio.Future[Any]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        """The tier-1 cache's current size, as counted against `cache_max_bytes`."""
        return int(self._entries.currsize)

    def lookup(self, key: CacheKey) -> CachedResponse | None:
        """Tier 1 only: the entry if it is still fresh or within its stale bound."""
        entry = self._entries.get(key)  # a hit also moves the key to the LRU's young end
        if entry is None:
            return None
        if entry.stale_until <= self._clock():
            del self._entries[key]
            return None
        return entry

    def fresh(self, key: CacheKey) -> CachedResponse | None:
        """Tier 1's entry for `key` if it is still fresh; nothing is evicted or fetched."""
        entry = self._entries.get(key)
        return entry if entry is not None and self.is_fresh(entry) else None

    async def from_tier2(self, key: CacheKey) -> CachedResponse | None:
        """Tier 2's entry (fresh or still within its stale bound), kept in tier 1 too. For
        callers that found nothing with `lookup`."""
        if self._tier2 is None:
            return None
        entry = await self._tier2.get(tier2_key(key))
        if entry is None or entry.stale_until <= self._clock():
            return None
        self.put(key, entry)
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

    def put(self, key: CacheKey, entry: CachedResponse) -> None:
        """Store an entry, evicting least recently used ones; one larger than the whole bound is
        simply not kept."""
        if entry_size(entry) > self._entries.maxsize:
            return
        self._entries[key] = entry

    async def put_tier2(self, key: CacheKey, entry: CachedResponse) -> None:
        if self._tier2 is not None:
            await self._tier2.put(tier2_key(key), entry)
