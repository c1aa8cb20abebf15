"""The local platform: aiohttp connection pool, `cryptography` signatures, asyncio tasks,
Prometheus metrics, ISA-L gzip. Never imported inside Workers.

aiohttp rather than httpx for the origin client: on loopback an httpx round trip costs ~1 ms of
client CPU against ~0.17 ms for aiohttp (bench/edge_bench.py measures the miss path).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator, Mapping
from typing import Any

import aiohttp
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from isal import isal_zlib
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from yarl import URL

from edge.cache import CacheTier
from edge.config import EdgeConfig
from edge.core.request import UpstreamError, UpstreamResponse
from edge.core.stats import METRICS, Stats
from edge.limits.quota import QuotaStore
from edge.tracing import SpanSink

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


_MAX_KEYS = 10_000  # parsed public keys kept for signature checks
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())

# ISA-L's levels are 0-3; zlib's 1-9 map onto 1-3 (1-3 -> 1, 4-6 -> 2, 7-9 -> 3). Its 0 is left
# out: a 4.8 KB embedding answer came out 57% larger than at 1, to save a few µs.
_ISAL_LEVEL = {level: (level + 2) // 3 for level in range(1, 10)}

# Headers aiohttp would add on its own: the edge forwards exactly what it was given.
_SKIP_AUTO = frozenset({"User-Agent", "Accept", "Accept-Encoding", "Content-Type"})


def origin_session(max_connections: int) -> aiohttp.ClientSession:
    """The aiohttp session the local edge forwards with (made inside a running loop)."""
    return aiohttp.ClientSession(
        # Idle connections are dropped after 4 s, before uvicorn's default 5 s keep-alive
        # closes them server-side: reusing one the origin just closed would fail the
        # request and count against (even eject) a healthy origin.
        connector=aiohttp.TCPConnector(
            limit=max_connections, ttl_dns_cache=300, keepalive_timeout=4.0
        ),
        cookie_jar=aiohttp.DummyCookieJar(),  # never carry one client's cookies to another
        skip_auto_headers=_SKIP_AUTO,
        trust_env=False,
    )


class LocalPlatform:
    """aiohttp pool to the origins; keys verified with `cryptography` via PyJWT."""

    name = "local"
    cache_tier2: CacheTier | None = None

    def __init__(self, connect_timeout: float = 2.0, max_connections: int = 256) -> None:
        self._connect_timeout = connect_timeout
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None  # made on first use, inside the loop
        self._timeouts: dict[tuple[float, float | None], aiohttp.ClientTimeout] = {}
        self._keys: dict[tuple[Any, ...], Any] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._registry: CollectorRegistry | None = None
        self._sink: Any = None
        self._redis: Any = None

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
        session = self._session or self._new_session()
        limits = self._timeouts.get((timeout, read_timeout))
        if limits is None:
            if len(self._timeouts) > 1024:  # read timeouts follow latency: keep a few
                self._timeouts.clear()
            limits = aiohttp.ClientTimeout(
                total=timeout,
                sock_connect=min(timeout, self._connect_timeout),
                sock_read=read_timeout,
            )
            self._timeouts[(timeout, read_timeout)] = limits
        try:
            async with session.request(
                method,
                URL(url, encoded=True),  # forward the path and query byte for byte
                headers=headers,
                data=body,
                timeout=limits,
                allow_redirects=False,
            ) as r:
                data = await r.read()
                out: dict[str, str] = {}
                for name, value in r.headers.items():
                    key = name.lower()
                    out[key] = f"{out[key]}, {value}" if key in out else value
                return UpstreamResponse(r.status, out, data)
        except aiohttp.ConnectionTimeoutError as exc:
            raise UpstreamError("connect", type(exc).__name__) from None
        except TimeoutError as exc:  # total or read timeout
            raise UpstreamError("timeout", type(exc).__name__) from None
        except aiohttp.ClientConnectorError as exc:  # refused, unreachable, no such host
            raise UpstreamError("connect", type(exc).__name__) from None
        except aiohttp.ClientError as exc:  # reset, closed mid-response, a malformed answer
            raise UpstreamError("disconnected", type(exc).__name__) from None

    def _new_session(self) -> aiohttp.ClientSession:
        self._session = origin_session(self._max_connections)
        return self._session

    async def verify_signature(
        self, alg: str, jwk: Mapping[str, Any], signing_input: bytes, signature: bytes
    ) -> bool:
        algorithm = _ALGS.get(alg)
        if algorithm is None:
            return False
        # Keyed by the public members only (cheaper than serialising the JWK per call), and
        # bounded: DPoP brings one key per device, so the set of keys seen is not.
        get = jwk.get
        cache_key = (alg, get("kty"), get("crv"), get("x"), get("y"), get("n"), get("e"))
        key = self._keys.get(cache_key)
        if key is None:
            key = algorithm.from_jwk(dict(jwk))
            if len(self._keys) >= _MAX_KEYS:
                self._keys.clear()
            self._keys[cache_key] = key
        if alg == "ES256":  # every DPoP proof: the JWS r||s signature straight to OpenSSL
            if len(signature) != 64:
                return False
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            try:
                key.verify(der, signing_input, _ECDSA_SHA256)
            except InvalidSignature:
                return False
            return True
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

    def gzip(self, body: bytes, level: int) -> bytes:
        # ISA-L rather than zlib: on a 4.8 KB embedding answer at level 1, under half of zlib's
        # CPU (zlib's window sized to the body) and 9% smaller output (bench/gzip_bench.py).
        return isal_zlib.compress(body, _ISAL_LEVEL[level], 31)  # wbits 31: a gzip member

    def quota_store(self, config: EdgeConfig) -> QuotaStore | None:
        if config.quota_store != "redis":
            return None
        from edge.limits.stores import RedisStore

        self._redis = RedisStore(config.quota_redis_url, config.quota_timeout_seconds)
        return self._redis

    def span_sink(self, config: EdgeConfig) -> SpanSink | None:
        if not config.trace_export_endpoint:
            return None
        from edge.tracing_otel import OtelSpanSink  # the SDK only when spans are exported

        self._sink = OtelSpanSink(config.trace_export_endpoint)
        return self._sink

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
        if self._sink is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._sink.shutdown)
        for task in list(self._tasks):
            task.cancel()
        if self._session is not None:
            await self._session.close()
