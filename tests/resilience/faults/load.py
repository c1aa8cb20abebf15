"""A small steady load generator for fault tests: threads sending requests until stopped,
recording every outcome (status or transport error)."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

Send = Callable[[httpx.Client, int], httpx.Response]


@dataclass
class Load:
    send: Send
    workers: int = 3
    pace: float = 0.0  # seconds each worker waits between requests
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    versions: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds, every completed request
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _counter: itertools.count = field(default_factory=itertools.count)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.wait(self.pace):
                n = next(self._counter)
                started = time.monotonic()
                try:
                    resp = self.send(client, n)
                    key = str(resp.status_code)
                    version = resp.headers.get("x-model-version", "")
                    bad = resp.status_code >= 400
                    detail = f"{resp.status_code} {resp.text[:200]}"
                except httpx.HTTPError as exc:
                    key, version, bad, detail = type(exc).__name__, "", True, repr(exc)
                with self._lock:
                    self.latencies.append(time.monotonic() - started)
                    self.outcomes[key] += 1
                    if version:
                        self.versions[version] += 1
                    if bad:
                        self.failures.append(detail)

    def __enter__(self) -> Load:
        for _ in range(self.workers):
            t = threading.Thread(target=self._run, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())

    def wait_for(self, count: int, timeout: float = 30.0) -> None:
        """Block until at least `count` more requests have completed."""
        target = self.total + count
        deadline = time.monotonic() + timeout
        while self.total < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"load made no progress: {dict(self.outcomes)}")
            time.sleep(0.05)
