"""A remote JSON Web Key Set (RFC 7517), kept in memory: an issuer's signing keys.

Fetched lazily through the platform (from its URL, or the one OIDC discovery names), trusted for
a TTL, fetched again on an unknown `kid` at a bounded rate (a client choosing `kid`s cannot make
the edge hammer the issuer), one fetch at a time, and kept (last good copy) when the issuer is
unreachable or answers nonsense. A known key never waits for a fetch: past the TTL it is
refreshed in the background while tokens signed with it go on being verified.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

from edge.runtime.base import Platform

log = logging.getLogger("edge.auth")

MAX_DOCUMENT_BYTES = 256 << 10  # real key sets are a few KB
MAX_KEYS = 64


class KeySet:
    """One issuer's keys. `jwks_url` None: found at `<issuer>/.well-known/openid-configuration`."""

    def __init__(
        self,
        platform: Platform,
        *,
        issuer: str,
        jwks_url: str | None,
        ttl: float,
        min_refresh_interval: float,
        timeout: float = 5.0,
    ) -> None:
        self.issuer = issuer
        self._platform = platform
        self._url = jwks_url
        self._ttl = ttl
        self._min_interval = min_refresh_interval
        self._timeout = timeout
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at: float | None = None  # monotonic time of the last attempt
        self._loaded_at: float | None = None  # monotonic time of the last success
        self._kid_refresh_at: float | None = None  # last fetch caused by an unknown kid
        self._inflight: asyncio.Future[None] | None = None
        self.fetches = 0

    @property
    def loaded(self) -> bool:
        """Whether a key set was ever fetched successfully."""
        return self._loaded_at is not None

    def _due(self, now: float) -> bool:
        """The keys are past their TTL and no fetch was tried in the last second."""
        expired = self._loaded_at is None or now - self._loaded_at >= self._ttl
        return expired and (self._fetched_at is None or now - self._fetched_at >= 1.0)

    async def key(self, kid: str) -> dict[str, Any] | None:
        """The key named `kid`; None when the issuer does not publish it."""
        now = self._platform.monotonic()
        known = self._keys.get(kid)
        if known is not None:
            if self._inflight is None and self._due(now):
                self._platform.spawn(self._refresh())
            return known
        if self._inflight is not None:  # a fetch is under way: its answer is the freshest
            await asyncio.shield(self._inflight)
            if kid in self._keys:
                return self._keys[kid]
            now = self._platform.monotonic()
        if self._due(now):  # an unknown key waits for the keys it may be among
            await self._refresh()
        elif kid not in self._keys and (
            self._kid_refresh_at is None or now - self._kid_refresh_at >= self._min_interval
        ):
            self._kid_refresh_at = now
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

    async def _get_json(self, url: str) -> Any:
        resp = await self._platform.fetch(
            "GET", url, {"accept": "application/json"}, None, self._timeout
        )
        if resp.status != 200:
            raise ValueError(f"HTTP {resp.status}")
        if len(resp.body) > MAX_DOCUMENT_BYTES:
            raise ValueError("document too large")
        return json.loads(resp.body)

    async def _load(self) -> None:
        self._fetched_at = self._platform.monotonic()
        self.fetches += 1
        try:
            if not self._url:
                discovery = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
                doc = await self._get_json(discovery)
                url = doc.get("jwks_uri") if isinstance(doc, Mapping) else None
                if not isinstance(url, str) or not url.startswith(("https://", "http://")):
                    raise ValueError("no jwks_uri")
                self._url = url
            doc = await self._get_json(self._url)
            found = doc.get("keys") if isinstance(doc, Mapping) else None
            if not isinstance(found, list):
                raise ValueError("no 'keys' list")
            keys = {
                k["kid"]: dict(k)
                for k in found[:MAX_KEYS]
                if isinstance(k, Mapping) and isinstance(k.get("kid"), str)
            }
        except Exception as exc:  # network, JSON or shape: keep the last good keys
            log.warning("key set fetch failed for issuer %s: %s", self.issuer, str(exc)[:200])
            return
        self._keys = keys
        self._loaded_at = self._platform.monotonic()
