"""The edge's own endpoints: `/healthz`, `/metrics` and `/openapi.json`.

Public answers show state, never where the origins are: `/healthz` gives the status, the pools'
healthy and total origin counts, the learned model versions and the cache's size. Origin URLs,
their last errors and `/metrics` are for the local server's internal listener
(`admin_port`, loopback by default) only."""

from __future__ import annotations

import json

from edge.cache import EdgeCache
from edge.core.problems import problem
from edge.core.request import EdgeRequest, EdgeResponse
from edge.core.stats import Stats
from edge.runtime.base import Platform
from edge.upstream.pool import OriginPool

_JSON_NO_STORE = {"content-type": "application/json", "cache-control": "no-store"}


class Endpoints:
    def __init__(self, platform: Platform, pool: OriginPool, cache: EdgeCache, stats: Stats):
        self._platform = platform
        self._pool = pool
        self._cache = cache
        self._stats = stats
        self._openapi: bytes | None = None

    def answer(self, name: str, req: EdgeRequest, rid: str) -> EdgeResponse:
        if name == "openapi":
            return self.openapi()
        if name == "metrics":
            if not req.internal:
                return problem(
                    404, "not-found", "Metrics are served on the internal listener.", rid
                )
            return self.metrics(rid)
        return self.health(detail=req.internal)

    def openapi(self) -> EdgeResponse:
        if self._openapi is None:
            from edge.core.openapi import openapi_document  # only when asked: Worker cold start

            self._openapi = json.dumps(openapi_document(), separators=(",", ":")).encode()
        headers = {"content-type": "application/json", "cache-control": "public, max-age=300"}
        return EdgeResponse(200, headers, self._openapi)

    def metrics(self, rid: str) -> EdgeResponse:
        exported = self._platform.metrics_text(self._stats)
        if exported is None:
            return problem(404, "not-found", "Metrics are not served here.", rid)
        ctype, body = exported
        return EdgeResponse(200, {"content-type": ctype, "cache-control": "no-store"}, body)

    def health(self, detail: bool = False) -> EdgeResponse:
        pool = self._pool
        now = self._platform.monotonic()
        ready = any(o.available(now) for o in pool.origins if o.spec.pool == "primary")
        counts: dict[str, dict[str, int]] = {}
        for origin in pool.origins:
            count = counts.setdefault(origin.spec.pool, {"healthy": 0, "total": 0})
            count["total"] += 1
            count["healthy"] += origin.available(now)
        body = {
            "status": "ok" if ready else "degraded",
            "platform": self._platform.name,
            "pools": counts,
            "models": {
                f"{name[0]}/{name[1]}": version
                for name, version in sorted(pool.versions.versions.items())
            },
            "cache_entries": len(self._cache),
            "cache_bytes": self._cache.size_bytes,
        }
        if detail:
            body["origins"] = pool.snapshot()
        return EdgeResponse(200, dict(_JSON_NO_STORE), json.dumps(body).encode())
