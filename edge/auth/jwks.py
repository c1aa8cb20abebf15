"""One issuer's signing keys (RFC 7517 JWKS), fetched through the platform and kept in memory."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

from edge.config import IssuerSpec
from edge.runtime.base import Platform

log = logging.getLogger("edge.auth")


class JwksCache:
    """One issuer's keys: fetched lazily, trusted for a TTL, refreshed on an unknown kid at a
    bounded rate, coalesced, and kept (last good copy) when the issuer is unreachable. A known
    key never waits for a fetch: once the TTL has passed it is refreshed in the background
    while tokens signed with it go on being verified."""

    def __init__(self, spec: IssuerSpec, platform: Platform, timeout: float = 5.0) -> None:
        self.spec = spec
        self._platform = platform
        self._timeout = timeout
        self._keys: dict[str, dict[str, Any]] = {}
        self._jwks_url = spec.jwks_url
        self._fetched_at: float | None = None  # monotonic time of the last attempt
        self._loaded_at: float | None = None  # monotonic time of the last success
        self._kid_refresh_at: float | None = None  # last refresh caused by an unknown kid
        self._inflight: asyncio.Future[None] | None = None
        self.fetches = 0

    def _due(self, now: float) -> bool:
        """The keys are past their TTL and no fetch was tried in the last second."""
        expired = self._loaded_at is None or now - self._loaded_at >= self.spec.jwks_ttl_seconds
        return expired and (self._fetched_at is None or now - self._fetched_at >= 1.0)

    async def key(self, kid: str) -> dict[str, Any] | None:
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
            self._kid_refresh_at is None
            or now - self._kid_refresh_at >= self.spec.refresh_min_interval_seconds
        ):
            self._kid_refresh_at = now
            await self._refresh()
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        if self._inflight is not None:
            await asyncio.shield(self._inflight)
            return
        loop = asyncio.get_running_loop()
        self._inflight = loop.create_future()
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
            raise ValueError(f"HTTP {resp.status} from {url}")
        return json.loads(resp.body)

    async def _load(self) -> None:
        self._fetched_at = self._platform.monotonic()
        self.fetches += 1
        try:
            if not self._jwks_url:
                discovery = self.spec.issuer.rstrip("/") + "/.well-known/openid-configuration"
                doc = await self._get_json(discovery)
                self._jwks_url = str(doc["jwks_uri"])
            doc = await self._get_json(self._jwks_url)
            keys = {
                str(k["kid"]): dict(k)
                for k in doc.get("keys", [])
                if isinstance(k, Mapping) and "kid" in k
            }
        except Exception as exc:  # network, JSON or shape: keep the last good keys
            log.warning("jwks refresh failed for issuer %s: %s", self.spec.issuer, exc)
            return
        self._keys = keys
        self._loaded_at = self._platform.monotonic()
