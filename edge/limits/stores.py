"""Quota stores shared by a fleet, and what happens when one cannot answer.

- `RedisStore` (self-hosted replicas, local runtime only): one Lua script charges all of a
  request's buckets atomically, on Redis's own clock (replicas' clocks may differ), and lets each
  bucket's key expire once it would be full again (an absent bucket is a full one), so Redis holds
  only buckets in use. The same call checks the request's DPoP proof id (`Once`) and records it
  when the request is charged, so a proof replayed to another replica is refused without a
  second round trip. One Redis node (or a
  primary with replicas): a request's keys must be on one node for the script to be atomic.
- `Guarded` wraps a shared store with a deadline and the `quota_fail_mode`: when the store is
  slow or down, `local` charges this process's own buckets instead (limits hold per replica),
  `open` allows, `closed` refuses with 503. The proof ids are then checked per replica only.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

from edge.limits.quota import Bucket, Level, MemoryStore, Once, Outcome, QuotaStore, settle

log = logging.getLogger("edge.limits")

# ARGV[1]: milliseconds a once-key is kept (0: none). KEYS: the once-key when there is one, then
# the buckets; ARGV[2..]: per bucket rate, burst, cost. Returns -1 for a once-key seen before
# (nothing charged), else the charge (1/0) and each bucket's tokens before it (strings: Lua
# numbers would be cut to integers). The once-key is kept only when the request is charged, so
# requests refused by their quotas store nothing.
_TAKE = """
local first = 1
if tonumber(ARGV[1]) > 0 then
  if redis.call('EXISTS', KEYS[1]) == 1 then return {-1} end
  first = 2
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local n = #KEYS - first + 1
local before = {}
local ok = 1
for i = 1, n do
  local rate = tonumber(ARGV[3 * i - 1])
  local burst = tonumber(ARGV[3 * i])
  local cost = tonumber(ARGV[3 * i + 1])
  local s = redis.call('HMGET', KEYS[first + i - 1], 't', 'ts')
  local tokens = burst
  if s[1] then
    tokens = math.min(burst, tonumber(s[1]) + math.max(0, now - tonumber(s[2])) * rate)
  end
  before[i] = tokens
  if tokens < cost then ok = 0 end
end
if ok == 1 and first == 2 then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) end
local out = {ok}
for i = 1, n do
  local key = KEYS[first + i - 1]
  local rate = tonumber(ARGV[3 * i - 1])
  local burst = tonumber(ARGV[3 * i])
  local left = before[i]
  if ok == 1 then left = left - tonumber(ARGV[3 * i + 1]) end
  redis.call('HSET', key, 't', tostring(left), 'ts', tostring(now))
  local full_in = 3600
  if rate > 0 then full_in = math.ceil((burst - left) / rate) + 1 end
  redis.call('EXPIRE', key, math.max(1, full_in))
  out[i + 1] = tostring(before[i])
end
return out
"""


class RedisStore:
    """Buckets in Redis (redis-py's asyncio client, one connection pool per edge process)."""

    def __init__(self, url: str, timeout: float) -> None:
        import redis.asyncio as redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # Never retried, whatever the URL asks: a script whose reply was lost has charged the
        # buckets and recorded the proof id, so running it again would charge twice and refuse
        # the request's own proof as a replay. A failed call goes to `Guarded`'s fail mode.
        self._client: Any = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=10,
            retry=Retry(NoBackoff(), 0),
        )
        self._script = self._client.register_script(_TAKE)

    async def take(self, buckets: Sequence[Bucket], once: Once | None = None) -> Outcome:
        keys = [b.key for b in buckets]
        args: list[float] = [0]
        if once is not None:
            keys.insert(0, once.key)
            args[0] = max(1, math.ceil(once.seconds * 1000))
        for b in buckets:
            args += [b.rate, b.burst, b.cost]
        reply = await self._script(keys=keys, args=args)
        if int(reply[0]) == -1:
            return Outcome(False, (), reused=True)
        before = [float(x) for x in reply[1:]]
        outcome = settle(before, buckets)
        if bool(int(reply[0])) != outcome.allowed:  # pragma: no cover - the same rule in Lua
            raise RuntimeError("quota script and settle disagree")
        return outcome

    async def aclose(self) -> None:
        await self._client.aclose()


class Guarded:
    """A shared store with a deadline, falling back as `mode` says when it cannot answer."""

    def __init__(
        self,
        shared: QuotaStore,
        fallback: MemoryStore,
        mode: str,
        timeout: float,
        on_error: Callable[[str], None],
    ) -> None:
        self._shared = shared
        self._fallback = fallback
        self._mode = mode
        self._timeout = timeout
        self._on_error = on_error

    async def take(self, buckets: Sequence[Bucket], once: Once | None = None) -> Outcome:
        try:
            return await asyncio.wait_for(self._shared.take(buckets, once), self._timeout)
        except Exception as exc:  # down, slow, refused, a broken reply: the mode decides
            self._on_error(self._mode)
            log.warning("quota store unavailable (%s): %s", self._mode, type(exc).__name__)
        if self._mode == "open":
            return Outcome(True, tuple(Level(b.burst, 0.0) for b in buckets))
        if self._mode == "closed":
            raise QuotaUnavailable()
        return self._fallback.take_now(buckets)


class QuotaUnavailable(Exception):
    """The shared quota store cannot answer and the fail mode is `closed`: answer 503."""
