"""An in-memory platform for the edge's device-trust modules, run in-process.

Signatures are checked by the real local platform (`cryptography`); only `fetch` is in memory
(answers by URL, standing in for the issuers' JWKS endpoints), and the clocks are settable.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Coroutine, Mapping
from typing import Any

from edge.core.request import UpstreamError, UpstreamResponse
from edge.runtime.local import LocalPlatform


class MemoryPlatform:
    name = "memory"
    cache_tier2 = None

    def __init__(self) -> None:
        self.responses: dict[str, tuple[int, bytes]] = {}
        self.fetched: list[str] = []
        self.verifications = 0
        self.clock = time.time()
        self.mono = 1000.0
        self._local = LocalPlatform()
        self._tasks: set[asyncio.Task[Any]] = set()

    def serve_json(self, url: str, doc: Any, status: int = 200) -> None:
        self.responses[url] = (status, json.dumps(doc).encode())

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
        self.fetched.append(url)
        if url not in self.responses:
            raise UpstreamError("connect", "nothing listens")
        status, data = self.responses[url]
        return UpstreamResponse(status, {"content-type": "application/json"}, data)

    async def verify_signature(
        self, alg: str, jwk: Mapping[str, Any], signing_input: bytes, signature: bytes
    ) -> bool:
        self.verifications += 1
        await asyncio.sleep(0)  # WebCrypto's verify is a promise: other requests run meanwhile
        return await self._local.verify_signature(alg, jwk, signing_input, signature)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        # Key sets past their TTL are refreshed in the background.
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def now(self) -> float:
        return self.clock

    def monotonic(self) -> float:
        return self.mono

    def metrics_text(self, stats: Any) -> None:
        return None

    def gzip(self, body: bytes, level: int) -> bytes:
        raise AssertionError("not used")
