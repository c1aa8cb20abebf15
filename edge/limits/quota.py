"""Quotas on requests and on work, per subject and per app, per route class (and per model).

A request is charged to every bucket that applies to it, all or nothing:

- the subject's request bucket of its route class (`rate_limits`),
- the subject's work bucket (`work_limits`, or `model_work_limits` for its model): the work is
  the request's estimated tokens (`edge.core.work`), or its images on the image routes,
- the app's request and work buckets (`app_rate_limits`, `app_work_limits`), for tokens that
  name their app.

Each bucket is a token bucket (refilled at `rate` per second, up to `burst`). Where the buckets
live is the store's business (`QuotaStore`): this process (`MemoryStore`), Redis shared by the
self-hosted replicas (`edge.limits.redis_store`), or a Durable Object in Workers
(`edge.limits.durable`). A refused request gets 429 with `Retry-After`; every answer carries
the buckets' draft RateLimit header fields (draft-ietf-httpapi-ratelimit-headers-10):
`RateLimit-Policy: "inference";q=40;w=2, "inference-work";q=32768;w=32` (size, seconds to refill
from empty) and `RateLimit: "inference";r=39;t=1, ...` (left, seconds until full again).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # kept off the Worker's cold start (the entry imports this module)
    from edge.config import EdgeConfig, RatePolicy


@dataclass(frozen=True, slots=True)
class Bucket:
    """One bucket a request is charged to: `key` names its state in the store."""

    name: str  # the RateLimit policy name (an sf-string: plain words and dashes)
    key: str
    rate: float
    burst: float
    cost: float


@dataclass(frozen=True, slots=True)
class Once:
    """A key the fleet must not have seen in the last `seconds` (a DPoP proof's id), recorded
    with the request's charge: a store shared by replicas refuses a second use of it
    (`Outcome.reused`), in the same round trip. Stores of one process ignore it (the proof
    check's own replay cache covers them)."""

    key: str
    seconds: float


@dataclass(frozen=True, slots=True)
class Level:
    """A bucket after the request: what is left, and seconds until it is full again."""

    remaining: float
    reset: float


@dataclass(frozen=True, slots=True)
class Outcome:
    allowed: bool
    levels: tuple[Level, ...]
    retry_after: int = 0  # seconds, when refused
    reused: bool = False  # refused, uncharged: its `Once` key was used before (a replay)


class QuotaStore(Protocol):
    """Where bucket states live. `take` charges every bucket or none (atomically for one
    store), at the store's notion of now; with `once`, refuses a request whose key it has seen
    (see `Once`)."""

    async def take(self, buckets: Sequence[Bucket], once: Once | None = None) -> Outcome: ...


def refill(tokens: float, last: float, now: float, bucket: Bucket) -> float:
    return min(bucket.burst, tokens + max(0.0, now - last) * bucket.rate)


def settle(states: Sequence[float], buckets: Sequence[Bucket]) -> Outcome:
    """The outcome of charging `buckets` whose refilled token counts are `states` (the one rule
    every store applies, so they agree)."""
    allowed = all(t >= b.cost for t, b in zip(states, buckets, strict=True))
    levels = []
    wait = 0.0
    for tokens, b in zip(states, buckets, strict=True):
        left = tokens - b.cost if allowed else tokens
        reset = (b.burst - left) / b.rate if b.rate > 0 else 0.0
        levels.append(Level(max(0.0, left), reset))
        if not allowed and tokens < b.cost:
            wait = max(wait, (b.cost - tokens) / b.rate if b.rate > 0 else 60.0)
    return Outcome(allowed, tuple(levels), 0 if allowed else max(1, math.ceil(wait)))


class MemoryStore:
    """Buckets in this process: an LRU of (tokens, last refill); an evicted (long idle) bucket
    starts full again. The default of a single edge."""

    def __init__(self, clock: Callable[[], float], max_buckets: int = 200_000) -> None:
        self._clock = clock
        self._max = max_buckets
        self._state: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take_now(self, buckets: Sequence[Bucket]) -> Outcome:
        now = self._clock()
        state = self._state
        tokens = []
        for b in buckets:
            found = state.get(b.key)
            tokens.append(b.burst if found is None else refill(found[0], found[1], now, b))
        outcome = settle(tokens, buckets)
        if outcome.allowed:
            for b, t in zip(buckets, tokens, strict=True):
                state[b.key] = (t - b.cost, now)
                state.move_to_end(b.key)
        else:
            for b, t in zip(buckets, tokens, strict=True):
                state[b.key] = (t, now)
                state.move_to_end(b.key)
        while len(state) > self._max:
            state.popitem(last=False)
        return outcome

    async def take(self, buckets: Sequence[Bucket], once: Once | None = None) -> Outcome:
        return self.take_now(buckets)


def _policy_text(b: Bucket) -> str:
    window = f";w={max(1, math.ceil(b.burst / b.rate))}" if b.rate > 0 else ""
    return f'"{b.name}";q={int(b.burst)}{window}'


def _level_text(b: Bucket, level: Level) -> str:
    reset = f";t={math.ceil(level.reset)}" if b.rate > 0 else ""
    return f'"{b.name}";r={int(level.remaining)}{reset}'


class Quotas:
    """The buckets that apply to a request, and the header fields of an outcome."""

    def __init__(self, config: EdgeConfig) -> None:
        self._config = config
        self._policies: dict[tuple[str, float, float], str] = {}  # their text, made once

    def buckets(
        self,
        route_class: str,
        subject: str,
        app: str,
        model: str,
        work: float | None,
    ) -> list[Bucket]:
        """`work` None: a request that asks for no work (model listing, tokens, health)."""
        config = self._config
        requests = config.policy_for(route_class)
        out = [_bucket(route_class, f"q|{route_class}|{subject}|n", requests, 1)]
        if work is not None:
            policy = config.model_work_limits.get(model) or config.work_limits.get(route_class)
            if policy is not None:
                key = f"q|{route_class}|{subject}|w"
                out.append(_bucket(f"{route_class}-work", key, policy, work))
        if app:
            policy = config.app_rate_limits.get(route_class)
            if policy is not None:
                out.append(_bucket(f"app-{route_class}", f"q|{route_class}|app:{app}|n", policy, 1))
            policy = config.app_work_limits.get(route_class)
            if work is not None and policy is not None:
                key = f"q|{route_class}|app:{app}|w"
                out.append(_bucket(f"app-{route_class}-work", key, policy, work))
        return out

    def too_large(self, buckets: Sequence[Bucket]) -> Bucket | None:
        """A bucket this request can never fit (its cost is more than the bucket holds)."""
        for b in buckets:
            if b.cost > b.burst:
                return b
        return None

    def _policy(self, b: Bucket) -> str:
        key = (b.name, b.rate, b.burst)
        text = self._policies.get(key)
        if text is None:
            if len(self._policies) > 1024:
                self._policies.clear()
            text = self._policies[key] = _policy_text(b)
        return text

    def headers(self, buckets: Sequence[Bucket], outcome: Outcome) -> dict[str, str]:
        policy = ", ".join(self._policy(b) for b in buckets)
        level = ", ".join(_level_text(b, lv) for b, lv in zip(buckets, outcome.levels, strict=True))
        out = {"ratelimit-policy": policy, "ratelimit": level}
        if not outcome.allowed:
            out["retry-after"] = str(outcome.retry_after)
        return out


def _bucket(name: str, key: str, policy: RatePolicy, cost: float) -> Bucket:
    return Bucket(name, key, float(policy.rate), float(policy.burst), float(cost))
