"""The Cloudflare Workers platform: `fetch`, WebCrypto, the Cache API and `waitUntil`.

Imports `js`/`pyodide` lazily inside methods so this module itself imports anywhere.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Coroutine, Mapping
from typing import Any

from edge.cache import CachedResponse
from edge.compression import zlib_gzip
from edge.config import EdgeConfig
from edge.core.request import UpstreamError, UpstreamResponse
from edge.core.stats import Stats
from edge.limits.quota import QuotaStore
from edge.tracing import LogSpanSink, SpanSink

_IMPORT = {
    "EdDSA": {"name": "Ed25519"},
    "ES256": {"name": "ECDSA", "namedCurve": "P-256"},
    "RS256": {"name": "RSASSA-PKCS1-v1_5", "hash": "SHA-256"},
}
_VERIFY = {
    "EdDSA": {"name": "Ed25519"},
    "ES256": {"name": "ECDSA", "hash": "SHA-256"},
    "RS256": {"name": "RSASSA-PKCS1-v1_5"},
}
_PUBLIC_MEMBERS = ("kty", "crv", "x", "y", "n", "e")
_MAX_KEYS = 10_000  # imported WebCrypto keys kept
CACHE_URL = "https://edge-cache.outpost.internal/"


def js_object(value: Any) -> Any:
    """A Python dict (nested) as a plain JS object."""
    from js import Object
    from pyodide.ffi import to_js

    return to_js(value, dict_converter=Object.fromEntries)


def js_headers(headers: Any) -> dict[str, str]:
    """A JS `Headers` object as a dict with lower-case names."""
    return {str(pair[0]).lower(): str(pair[1]) for pair in headers.entries()}


class CloudflareCacheTier:
    """Tier 2: the data centre's Cache API (`caches.default`), keyed by a synthetic URL."""

    async def get(self, key: str) -> CachedResponse | None:
        import js

        resp = await js.caches.default.match(CACHE_URL + key)
        if resp is None or resp.status != 200:
            return None
        try:
            meta = json.loads(resp.headers.get("x-outpost-meta"))
        except (TypeError, ValueError):
            return None
        body = (await resp.arrayBuffer()).to_bytes()
        return CachedResponse(body=body, **meta)

    async def put(self, key: str, entry: CachedResponse) -> None:
        import js
        from pyodide.ffi import to_js

        ttl = max(1, int(entry.stale_until - time.time()))
        meta = {
            "status": entry.status,
            "headers": entry.headers,
            "stored_at": entry.stored_at,
            "fresh_until": entry.fresh_until,
            "stale_until": entry.stale_until,
            "etag": entry.etag,
        }
        init = {
            "status": 200,
            "headers": {"cache-control": f"max-age={ttl}", "x-outpost-meta": json.dumps(meta)},
        }
        await js.caches.default.put(
            CACHE_URL + key, js.Response.new(to_js(entry.body), js_object(init))
        )


class WorkersPlatform:
    """Platform for Cloudflare Python Workers (also runs in plain Pyodide under Node)."""

    name = "workers"

    def __init__(self, env: Any = None) -> None:
        import js

        self._env = env  # the Worker's bindings (the quota Durable Objects)
        caches = getattr(js, "caches", None)
        self.cache_tier2 = CloudflareCacheTier() if caches is not None else None
        self._keys: dict[tuple[Any, ...], Any] = {}

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
        import js
        from pyodide.ffi import JsException, create_once_callable, to_js

        signal = js.AbortSignal.timeout(max(1, int(timeout * 1000)))
        timer = None
        if read_timeout is not None and read_timeout < timeout:
            # Until the answer's head arrives: an AbortController the timer fires.
            first = js.AbortController.new()
            timer = js.setTimeout(
                create_once_callable(lambda: first.abort()), max(1, int(read_timeout * 1000))
            )
            signal = js.AbortSignal.any(to_js([signal, first.signal]))
        init: dict[str, Any] = {
            "method": method,
            "headers": js_object(dict(headers)),
            "redirect": "manual",
            "signal": signal,
        }
        if body:
            init["body"] = to_js(body)
        try:
            resp = await js.fetch(url, js_object(init))
            if timer is not None:
                js.clearTimeout(timer)
            data = (await resp.arrayBuffer()).to_bytes()
        except JsException as exc:
            text = f"{getattr(exc, 'name', '')} {exc}"
            kind = "timeout" if "Timeout" in text or "Abort" in text else "connect"
            raise UpstreamError(kind, text.strip()[:200]) from None
        finally:
            if timer is not None:
                js.clearTimeout(timer)
        return UpstreamResponse(int(resp.status), js_headers(resp.headers), data)

    async def verify_signature(
        self, alg: str, jwk: Mapping[str, Any], signing_input: bytes, signature: bytes
    ) -> bool:
        import js
        from pyodide.ffi import to_js

        if alg not in _IMPORT:
            return False
        # Keyed by the public members, and bounded: DPoP brings one key per device.
        cache_key = (alg, *(jwk.get(k) for k in _PUBLIC_MEMBERS))
        key = self._keys.get(cache_key)
        if key is None:
            public = {k: jwk[k] for k in _PUBLIC_MEMBERS if k in jwk}
            key = await js.crypto.subtle.importKey(
                "jwk", js_object(public), js_object(_IMPORT[alg]), False, to_js(["verify"])
            )
            if len(self._keys) >= _MAX_KEYS:
                self._keys.clear()
            self._keys[cache_key] = key
        ok = await js.crypto.subtle.verify(
            js_object(_VERIFY[alg]), key, to_js(signature), to_js(signing_input)
        )
        return bool(ok)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        try:
            from pyodide.ffi import create_proxy
            from workers import wait_until

            proxy = create_proxy(task)
            wait_until(proxy)
            task.add_done_callback(lambda _t: proxy.destroy())
        except Exception:  # outside a request context the task still runs on the loop
            pass

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def metrics_text(self, stats: Stats) -> tuple[str, bytes] | None:
        return None

    def quota_store(self, config: EdgeConfig) -> QuotaStore | None:
        if config.quota_store != "durable-object":
            return None
        from edge.limits.durable import DurableStore

        return DurableStore(self._env, config.quota_shards)

    def span_sink(self, config: EdgeConfig) -> SpanSink | None:
        # The OpenTelemetry SDK does not run here: sampled spans are JSON log lines, which
        # Workers Logs and Logpush carry.
        return LogSpanSink(print)

    def gzip(self, body: bytes, level: int) -> bytes:
        return zlib_gzip(body, level)
