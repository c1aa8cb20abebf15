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
        self._static: dict[RatePolicy, tuple[str, str]] = {}  # policy -> (limit, policy) texts

    def _texts(self, policy: RatePolicy) -> tuple[str, str]:
        texts = self._static.get(policy)
        if texts is None:
            rate, burst = policy.rate, policy.burst
            window = f"{burst};w={max(1, math.ceil(burst / rate))}" if rate > 0 else str(burst)
            texts = self._static[policy] = (str(burst), window)
        return texts

    def check(self, route_class: str, subject: str, policy: RatePolicy) -> Decision:
        now = self._clock()
        key = (route_class, subject)
        buckets = self._buckets
        bucket = buckets.get(key)
        burst = float(policy.burst)
        rate = policy.rate
        if bucket is None:
            tokens = burst
            bucket = buckets[key] = [burst, now]
            if len(buckets) > self._max:
                buckets.popitem(last=False)  # the longest idle subject starts full again
        else:
            tokens = min(burst, bucket[0] + (now - bucket[1]) * rate)
            buckets.move_to_end(key)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        bucket[0] = tokens
        bucket[1] = now
        reset = math.ceil((burst - tokens) / rate) if rate > 0 else 0
        limit, window = self._texts(policy)
        headers = {
            "ratelimit-limit": limit,
            "ratelimit-remaining": str(int(tokens)),
            "ratelimit-reset": str(reset),
            "ratelimit-policy": window,
        }
        if allowed:
            return Decision(True, headers)
        retry_after = max(1, math.ceil((1.0 - tokens) / rate)) if rate > 0 else 60
        headers["retry-after"] = str(retry_after)
        return Decision(False, headers, retry_after)
