"""Per-subject token buckets with `RateLimit-*` and `Retry-After` headers."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import LRUCache

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
        self._buckets: LRUCache[tuple[str, str], list[float]] = LRUCache(maxsize=max_subjects)

    def check(self, route_class: str, subject: str, policy: RatePolicy) -> Decision:
        now = self._clock()
        key = (route_class, subject)
        bucket = self._buckets.get(key)
        burst = float(policy.burst)
        rate = policy.rate
        tokens = burst if bucket is None else min(burst, bucket[0] + (now - bucket[1]) * rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[key] = [tokens, now]
        reset = math.ceil((burst - tokens) / rate) if rate > 0 else 0
        headers = {
            "ratelimit-limit": str(policy.burst),
            "ratelimit-remaining": str(int(tokens)),
            "ratelimit-reset": str(reset),
            "ratelimit-policy": f"{policy.burst};w={max(1, math.ceil(burst / rate))}"
            if rate > 0
            else str(policy.burst),
        }
        if allowed:
            return Decision(True, headers)
        retry_after = max(1, math.ceil((1.0 - tokens) / rate)) if rate > 0 else 60
        headers["retry-after"] = str(retry_after)
        return Decision(False, headers, retry_after)
