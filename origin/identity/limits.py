"""Registration caps: token buckets per client address and per app key.

A bucket of `limit` registrations refills over `window` seconds, so a burst of `limit` is allowed
and then one every `window / limit` seconds. Buckets live in this replica's memory, bounded (the
longest idle bucket goes first, and starts full again if it comes back): N origin replicas
behind the edge admit up to N times the cap.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class TokenBuckets:
    """Thread-safe buckets keyed by any string (`app:<id>`, `addr:<ip>`)."""

    def __init__(
        self, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str, limit: int, window: float) -> int | None:
        """Spend one registration; None when allowed, else the seconds to wait (>= 1)."""
        rate = limit / window
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.pop(key, (float(limit), now))
            tokens = min(float(limit), tokens + (now - last) * rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[key] = (tokens, now)
            if len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        return None if allowed else max(1, math.ceil((1.0 - tokens) / rate))


class ClientAddress:
    """The bucket a client address counts in.

    The address is the one the edge proved (the `ip:` subject of the caller proof, see
    `origin.identity.router.client_address`); without a proof, the one uvicorn reports, which
    believes `X-Forwarded-For` only from the peers in `FORWARDED_ALLOW_IPS` (default loopback).
    Either way a client cannot pick its own bucket.
    """

    def __init__(self, ipv6_prefix: int = 64) -> None:
        self._prefix = ipv6_prefix

    def bucket(self, address: str) -> str:
        """The counting key: the IPv4 address, the IPv6 prefix (one host owns a whole /64)."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return f"addr:{address[:64]}"
        if isinstance(ip, ipaddress.IPv6Address):
            if ip.ipv4_mapped is not None:
                return f"addr:{ip.ipv4_mapped}"
            return f"addr:{ipaddress.ip_network(f'{ip}/{self._prefix}', strict=False)}"
        return f"addr:{ip}"
