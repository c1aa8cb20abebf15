"""Recent origin latency per model, per unit of work: where the edge's read timeouts and hedges
come from.

A request's time at the origin grows with its work (a batch of 256 inputs takes far longer than
one), so latency is kept per unit of work (seconds per input) and scaled by each request's
units. The quantiles come from a window of recent successful answers.
"""

from __future__ import annotations

import math
from collections import deque


class LatencyWindow:
    """The last `size` per-unit latencies of one (pool, model); quantiles recomputed every
    `every` samples (sorting a few hundred floats is cheap, doing it per request is not)."""

    def __init__(self, size: int = 256, every: int = 32) -> None:
        self._samples: deque[float] = deque(maxlen=size)
        self._every = every
        self._since = 0
        self.p99 = 0.0

    def add(self, seconds: float, units: int) -> None:
        self._samples.append(seconds / max(1, units))
        self._since += 1
        if self._since >= self._every or len(self._samples) <= self._every:
            self._since = 0
            ordered = sorted(self._samples)
            self.p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]

    @property
    def known(self) -> bool:
        return len(self._samples) >= 8


class Deadlines:
    """Per (pool, model): how long to wait for an origin's answer before giving up on it (the
    read timeout) and before asking a second origin too (the hedge delay)."""

    def __init__(
        self,
        request_timeout: float,
        read_floor: float,
        read_factor: float,
        hedge_floor: float,
        hedge_factor: float,
    ) -> None:
        self._request_timeout = request_timeout
        self._read_floor = read_floor
        self._read_factor = read_factor
        self._hedge_floor = hedge_floor
        self._hedge_factor = hedge_factor
        self._windows: dict[tuple[str, str], LatencyWindow] = {}

    def observe(self, key: tuple[str, str], seconds: float, units: int) -> None:
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) >= 4096:  # keys come from model names: bounded
                self._windows.clear()
            window = self._windows[key] = LatencyWindow()
        window.add(seconds, units)

    def read_timeout(self, key: tuple[str, str], units: int) -> float:
        """Floor + factor x recent p99 x units, capped by the request timeout; the request
        timeout itself until enough answers were seen."""
        window = self._windows.get(key)
        if window is None or not window.known:
            return self._request_timeout
        wait = self._read_floor + self._read_factor * window.p99 * max(1, units)
        return min(math.ceil(wait * 20) / 20, self._request_timeout)  # in 50 ms steps

    def hedge_delay(self, key: tuple[str, str], units: int) -> float | None:
        """When to ask a second origin: factor x recent p99 x units (at least the floor), or
        None until enough answers were seen. Well past p99, so a healthy pool rarely hedges,
        while every request a frozen origin holds is."""
        window = self._windows.get(key)
        if window is None or not window.known:
            return None
        return max(self._hedge_floor, self._hedge_factor * window.p99 * max(1, units))
