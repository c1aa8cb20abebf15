"""The local platform: httpx connection pool, `cryptography` signatures, asyncio tasks,
Prometheus metrics. Never imported inside Workers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Coroutine, Iterator, Mapping
from typing import Any

import httpx
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from edge.messages import UpstreamError, UpstreamResponse
from edge.platform.base import CacheTier
from edge.stats import METRICS, Stats

_ALGS = {
    "EdDSA": OKPAlgorithm(),
    "ES256": ECAlgorithm(ECAlgorithm.SHA256),
    "RS256": RSAAlgorithm(RSAAlgorithm.SHA256),
}


class _StatsCollector(Collector):
    def __init__(self, stats: Stats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[CounterMetricFamily]:
        for name, (doc, labels) in METRICS.items():
            family = CounterMetricFamily(name.removesuffix("_total"), doc, labels=list(labels))
            for values, count in list(self._stats.counters[name].items()):
                family.add_metric(list(values), count)
            yield family


class LocalPlatform:
    """httpx.AsyncClient pool to the origins; keys verified with `cryptography` via PyJWT."""

    name = "local"
    cache_tier2: CacheTier | None = None

    def __init__(self, connect_timeout: float = 2.0, max_connections: int = 256) -> None:
        self._connect_timeout = connect_timeout
        self._client = httpx.AsyncClient(
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            trust_env=False,
            follow_redirects=False,
        )
        self._keys: dict[str, Any] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._registry: CollectorRegistry | None = None

    async def fetch(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float,
    ) -> UpstreamResponse:
        try:
            r = await self._client.request(
                method,
                url,
                headers=headers,
                content=body,
                timeout=httpx.Timeout(timeout, connect=min(timeout, self._connect_timeout)),
            )
        except httpx.TimeoutException as exc:
            kind = "connect" if isinstance(exc, httpx.ConnectTimeout) else "timeout"
            raise UpstreamError(kind, type(exc).__name__) from None
        except httpx.TransportError as exc:  # refused, reset, closed mid-response
            raise UpstreamError("connect", type(exc).__name__) from None
        return UpstreamResponse(r.status_code, dict(r.headers.items()), r.content)

    async def verify_signature(
        self, alg: str, jwk: Mapping[str, Any], signing_input: bytes, signature: bytes
    ) -> bool:
        algorithm = _ALGS.get(alg)
        if algorithm is None:
            return False
        cache_key = alg + json.dumps(jwk, sort_keys=True)
        key = self._keys.get(cache_key)
        if key is None:
            key = algorithm.from_jwk(dict(jwk))
            self._keys[cache_key] = key
        return bool(algorithm.verify(signing_input, key, signature))

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def metrics_text(self, stats: Stats) -> tuple[str, bytes] | None:
        if self._registry is None:
            self._registry = CollectorRegistry(auto_describe=False)
            self._registry.register(_StatsCollector(stats))
        return "text/plain; version=0.0.4; charset=utf-8", generate_latest(self._registry)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self._client.aclose()
