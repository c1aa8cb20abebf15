"""Per-subject token buckets with `RateLimit-*` and `Retry-After` headers."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from edge.config import RatePolicy


@dataclass(slots=True)
class Decision:
    allowed: bool
    headers: dict[str, str]
    retry_after: int = 0


class RateLimiter:
    """Token bucket per (route class, subject). Buckets live in a bounded LRU: an evicted
    (long idle) bucket simply starts full again."""

    def __init__(self, clock: Callable[[], float], max_subjects: int = 100_000) -> None:
        self._clock = clock
        self._max = max_subjects
        # LRU of [tokens, last refill time]; OrderedDict keeps the hot path in C.
        self._buckets: OrderedDict[tuple[str, str], list[float]] = OrderedDict()
        # (rate, burst) -> the limit and policy header texts. Keyed by a plain tuple: hashing
        # the frozen dataclass itself runs Python code, which showed in a cache hit's profile.
        self._static: dict[tuple[float, int], tuple[str, str]] = {}

    def _texts(self, rate: float, burst: int) -> tuple[str, str]:
        window = f"{burst};w={max(1, math.ceil(burst / rate))}" if rate > 0 else str(burst)
        texts = self._static[(rate, burst)] = (str(burst), window)
        return texts

    def check(self, route_class: str, subject: str, policy: RatePolicy) -> Decision:
        now = self._clock()
        key = (route_class, subject)
        buckets = self._buckets
        bucket = buckets.get(key)
        burst = policy.burst
        rate = policy.rate
        if bucket is None:
            tokens = float(burst)
            bucket = buckets[key] = [tokens, now]
            if len(buckets) > self._max:
                buckets.popitem(last=False)  # the longest idle subject starts full again
        else:
            tokens = bucket[0] + (now - bucket[1]) * rate
            if tokens > burst:
                tokens = float(burst)
            buckets.move_to_end(key)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        bucket[0] = tokens
        bucket[1] = now
        texts = self._static.get((rate, burst)) or self._texts(rate, burst)
        headers = {
            "ratelimit-limit": texts[0],
            "ratelimit-remaining": str(int(tokens)),
            "ratelimit-reset": str(math.ceil((burst - tokens) / rate)) if rate > 0 else "0",
            "ratelimit-policy": texts[1],
        }
        if allowed:
            return Decision(True, headers)
        retry_after = max(1, math.ceil((1.0 - tokens) / rate)) if rate > 0 else 60
        headers["retry-after"] = str(retry_after)
        return Decision(False, headers, retry_after)
