"""The edge in-process: the real `EdgeApp` behind the real ASGI adapter, on a `FakePlatform`.

The fakes stand in for the edge's outbound seam (`edge.runtime.base.Platform`) only: `fetch`
reaches in-memory origins and issuers instead of the network, and the clock can be moved. Token
signatures are still checked with the local platform's real `cryptography` code, and requests
go through the real ASGI adapter (`httpx.ASGITransport`). What the fake origin answers follows
the origin's HTTP contract (docs/dev/design.md); the real origin, the real uvicorn server and
real Pyodide are exercised by the process-level tests (test_processes.py, test_failover.py,
pyodide/).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import zlib
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from edge.adapters.asgi import ASGIEdge
from edge.config import load_config
from edge.core.app import EdgeApp
from edge.core.request import UpstreamError, UpstreamResponse
from edge.core.stats import Stats
from edge.runtime.local import LocalPlatform
from tests.edge.conftest import EMBED_MODEL, Issuer


@dataclass
class Call:
    """One request the fake network received."""

    method: str
    url: str
    path: str
    headers: dict[str, str]
    body: bytes


Handler = Callable[[Call], Awaitable[UpstreamResponse]]


class ListSink:
    """The edge's finished spans, kept for the test to read."""

    def __init__(self) -> None:
        self.finished: list[Any] = []

    def emit(self, done: Any) -> None:
        self.finished.append(done)


class FakePlatform:
    """`Platform` in memory: `fetch` goes to the handler serving the URL's base (none: a
    connection failure), signatures are verified for real, `advance` moves both clocks."""

    name = "fake"
    cache_tier2 = None

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}
        self.calls: list[Call] = []
        self.read_timeouts: list[float | None] = []
        self.spans = ListSink()
        self.shared_quota: Any = None
        self.offset = 0.0
        self._local = LocalPlatform()
        self._tasks: set[asyncio.Task[Any]] = set()

    def serve(self, base_url: str, handler: Handler) -> None:
        self.handlers[base_url.rstrip("/")] = handler

    def advance(self, seconds: float) -> None:
        self.offset += seconds

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
        for base, handler in self.handlers.items():
            if url == base or url.startswith(base + "/"):
                call = Call(method, url, url[len(base) :] or "/", dict(headers), body or b"")
                self.calls.append(call)
                self.read_timeouts.append(read_timeout)
                wait = timeout if read_timeout is None else min(timeout, read_timeout)
                try:
                    return await asyncio.wait_for(handler(call), wait)
                except TimeoutError:
                    raise UpstreamError("timeout", "read") from None
        raise UpstreamError("connect", f"nothing serves {url}")

    async def verify_signature(
        self, alg: str, jwk: Mapping[str, Any], signing_input: bytes, signature: bytes
    ) -> bool:
        return await self._local.verify_signature(alg, jwk, signing_input, signature)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait for the background work spawned so far (health rounds, cache writes)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def now(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def metrics_text(self, stats: Stats) -> tuple[str, bytes] | None:
        return self._local.metrics_text(stats)

    def span_sink(self, config: Any) -> Any:
        return self.spans

    def quota_store(self, config: Any) -> Any:
        return self.shared_quota  # None: the edge's own buckets

    def gzip(self, body: bytes, level: int) -> bytes:
        c = zlib.compressobj(level, zlib.DEFLATED, 31)
        return c.compress(body) + c.flush()


def json_answer(status: int, body: Any, headers: dict[str, str] | None = None) -> UpstreamResponse:
    ctype = "application/problem+json" if status >= 400 else "application/json"
    return UpstreamResponse(
        status, {"content-type": ctype, **(headers or {})}, json.dumps(body).encode()
    )


def vector(text: str, version: str, dims: int = 32) -> list[float]:
    """A deterministic 'embedding' of `text` that differs between model versions."""
    digest = hashlib.sha256(f"{version}\x00{text}".encode("utf-8", "surrogatepass")).digest()
    return [round((digest[i % 32] - 128) / 128, 4) for i in range(dims)]


@dataclass
class FakeOrigin:
    """An origin as the edge sees it (docs/dev/design.md's contract): embeddings and OIP infer
    answers naming the model and version, cacheable for an hour; model listing; health.
    `status` makes every inference answer that status, `delay` holds answers, `down` refuses
    connections (the platform then reports a connect failure)."""

    url: str
    models: dict[str, str] = field(default_factory=lambda: {EMBED_MODEL: "1"})
    status: int | None = None
    delay: float = 0.0
    down: bool = False
    frozen: bool = False  # accepts requests and never answers (a SIGSTOPped process)
    disconnects: int = 0  # the next N calls break their connection before any answer
    calls: list[Call] = field(default_factory=list)
    # model -> what the origin says of its cache scope (X-Outpost-Cache-Scope, listing field)
    scopes: dict[str, str] = field(default_factory=dict)

    def inference_calls(self) -> list[Call]:
        return [c for c in self.calls if c.method == "POST"]

    async def __call__(self, call: Call) -> UpstreamResponse:
        if self.down:
            raise UpstreamError("connect", "refused")
        if self.disconnects:
            self.disconnects -= 1
            raise UpstreamError("disconnected", "ServerDisconnectedError")
        self.calls.append(call)
        if self.frozen:
            await asyncio.Event().wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        path = call.path.split("?", 1)[0]
        if path == "/v2/health/ready":
            return json_answer(200, {"ready": True})
        if path == "/v1/models":
            data = [
                {"id": m, "served_version": v, **self._scope_field(m)}
                for m, v in self.models.items()
            ]
            return json_answer(200, {"object": "list", "data": data})
        if call.method != "POST":
            return json_answer(200, {"path": path})
        if self.status is not None:
            return json_answer(self.status, {"status": self.status, "title": "failing"})
        framing = call.headers.get("inference-header-content-length")
        if framing is not None:  # Triton's binary extension: a JSON header, then raw bytes
            payload = json.loads(call.body[: int(framing)])
            payload["input"] = call.body[int(framing) :].hex()
        else:
            try:
                payload = json.loads(call.body)
            except ValueError:  # a multipart upload: the model is a form field, read whole
                payload = {"model": EMBED_MODEL, "input": call.body.hex()}
        model = payload.get("model") or (path.split("/") + [""] * 4)[3]
        if model not in self.models:
            return json_answer(404, {"status": 404, "title": "Not Found"})
        version = self.models[model]
        inputs = payload.get("input", "")
        texts = inputs if isinstance(inputs, list) else [inputs]
        data = [
            {"object": "embedding", "index": i, "embedding": vector(str(t), version)}
            for i, t in enumerate(texts)
        ]
        return json_answer(
            200,
            {"object": "list", "model": model, "data": data},
            {
                "x-model-name": model,
                "x-model-version": version,
                "cache-control": "public, max-age=3600",
                **({"x-outpost-cache-scope": self.scopes[model]} if model in self.scopes else {}),
            },
        )

    def _scope_field(self, model: str) -> dict[str, str]:
        return {"cache_scope": self.scopes[model]} if model in self.scopes else {}


def serve_issuer_in_memory(platform: FakePlatform, issuer: Issuer) -> None:
    """`issuer`'s discovery document and JWKS (`/keys`) on the fake network."""

    async def handler(call: Call) -> UpstreamResponse:
        issuer.hits[call.path] += 1
        if call.path == "/.well-known/openid-configuration":
            return json_answer(200, {"issuer": issuer.url, "jwks_uri": issuer.url + "/keys"})
        if call.path == "/keys":
            return json_answer(200, issuer.jwks())
        return json_answer(404, {"status": 404})

    platform.serve(issuer.url, handler)


def make_issuer(url: str, *keys: tuple[str, str]) -> Issuer:
    """An issuer at `url` (served by `serve_issuer_in_memory`) with (kid, alg) keys."""
    issuer = Issuer(url=url)
    for kid, alg in keys:
        issuer.add_key(kid, alg)
    return issuer


class EdgeUnderTest:
    """One in-process edge: `client` talks to it through the ASGI adapter."""

    def __init__(
        self, settings: dict[str, Any], platform: FakePlatform, origins: list[FakeOrigin]
    ) -> None:
        self.platform = platform
        self.origins = origins
        self.config = load_config(
            {k: v if isinstance(v, str) else json.dumps(v) for k, v in settings.items()}
        )
        self.app = EdgeApp(self.config, platform)
        self.asgi = ASGIEdge(self.app, internal_ports=frozenset({INTERNAL_PORT}))
        transport = httpx.ASGITransport(app=self.asgi, client=("203.0.113.7", 40000))
        self.client = httpx.AsyncClient(
            transport=transport, base_url="http://edge.test", timeout=30
        )
        # The same app through the local server's internal listener (its port).
        self.internal = httpx.AsyncClient(
            transport=transport, base_url=f"http://edge.test:{INTERNAL_PORT}", timeout=30
        )

    @property
    def origin(self) -> FakeOrigin:
        return self.origins[0]

    async def embed(
        self, token: str | None, text: Any, model: str = EMBED_MODEL, **kw: Any
    ) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        headers.update(kw.pop("headers", {}))
        body = {"model": model, "input": text}
        return await self.client.post("/v1/embeddings", json=body, headers=headers, **kw)

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a counter over the label sets that include `labels`."""
        spec = self.app.stats.counters[name]
        from edge.core.stats import METRICS

        names = METRICS[name][1]
        return sum(
            count
            for values, count in spec.items()
            if all(dict(zip(names, values, strict=True)).get(k) == v for k, v in labels.items())
        )

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.internal.aclose()
        await self.platform.settle()


INTERNAL_PORT = 9901
ISSUER_URL = "https://issuer.test"
OIDC_URL = "https://oidc.test"


def issuers_setting(issuer: Issuer, oidc: Issuer, **extra: Any) -> list[dict[str, Any]]:
    """The edge's issuers setting for the in-memory issuers (the same shape as the process
    tests' `issuer_settings`)."""
    return [
        {"issuer": issuer.url, "jwks_url": issuer.url + "/keys", "algorithms": ["EdDSA"], **extra},
        {"issuer": oidc.url, "algorithms": ["ES256", "RS256"], **extra},
    ]
