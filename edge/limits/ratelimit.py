"""Per-subject token buckets with `RateLimit`, `RateLimit-Policy` and `Retry-After` headers.

The header fields follow draft-ietf-httpapi-ratelimit-headers-10: `RateLimit-Policy:
"inference";q=40;w=2` names the route class's bucket, its size (q) and the seconds it takes to
refill from empty (w); `RateLimit: "inference";r=39;t=1` gives the requests left (r) and the
seconds until the bucket is full again (t)."""

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
        # (route class, rate, burst) -> the policy header text and the `RateLimit` prefix.
        # Keyed by a plain tuple: hashing the frozen RatePolicy runs Python code, which showed
        # in a cache hit's profile.
        self._static: dict[tuple[str, float, int], tuple[str, str]] = {}

    def _texts(self, route_class: str, rate: float, burst: int) -> tuple[str, str]:
        name = f'"{route_class}"'  # an sf-string: route classes are plain words (edge.core.routes)
        window = f";w={max(1, math.ceil(burst / rate))}" if rate > 0 else ""
        texts = self._static[(route_class, rate, burst)] = (f"{name};q={burst}{window}", name)
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
        policy_text, name = self._static.get((route_class, rate, burst)) or self._texts(
            route_class, rate, burst
        )
        # t: seconds until the bucket is full again (a bucket that never refills has none).
        reset = f";t={math.ceil((burst - tokens) / rate)}" if rate > 0 else ""
        headers = {
            "ratelimit-policy": policy_text,
            "ratelimit": f"{name};r={int(tokens)}{reset}",
        }
        if allowed:
            return Decision(True, headers)
        retry_after = max(1, math.ceil((1.0 - tokens) / rate)) if rate > 0 else 60
        headers["retry-after"] = str(retry_after)
        return Decision(False, headers, retry_after)
