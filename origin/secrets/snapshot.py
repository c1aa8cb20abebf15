"""In-memory copy of the origin's KV v2 secrets, refreshed in the background.

Request handlers read only this copy, never Vault. A failed refresh keeps the last good copy and
marks the snapshot degraded (with a reason that never contains a secret value).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from origin.secrets.client import UNAVAILABLE_ERRORS, VaultClient

log = logging.getLogger("outpost.origin.secrets")


class SecretsUnavailable(RuntimeError):
    """A secret the caller needs was never loaded (or does not exist in Vault)."""


@dataclass(frozen=True)
class SnapshotStatus:
    loaded: bool
    ok: bool
    reason: str | None
    loaded_at: float | None
    version_count: int


def describe_error(exc: BaseException) -> str:
    """A short, secret-free description of why Vault could not be used."""
    if isinstance(exc, UNAVAILABLE_ERRORS):
        return f"vault unreachable ({type(exc).__name__})"
    return f"vault error ({type(exc).__name__})"


class SecretsSnapshot:
    """Every KV v2 secret under the origin's prefix, as `{name: data}`, swapped in atomically."""

    def __init__(
        self,
        client: VaultClient,
        *,
        interval: float | None = None,
        jitter: float | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._client = client
        self.interval = client.settings.refresh_interval if interval is None else interval
        self.jitter = client.settings.refresh_jitter if jitter is None else jitter
        self._rng = rng
        self._data: Mapping[str, Mapping[str, Any]] = MappingProxyType({})
        self._loaded_at: float | None = None
        self._reason: str | None = "secrets not loaded yet"
        self._lock = threading.Lock()

    # Reading (request path): memory only.

    @property
    def loaded(self) -> bool:
        return self._loaded_at is not None

    def get(self, name: str) -> Mapping[str, Any] | None:
        return self._data.get(name)

    def require(self, name: str) -> Mapping[str, Any]:
        value = self._data.get(name)
        if value is None:
            raise SecretsUnavailable(f"secret {name!r} is not loaded")
        return value

    def names(self) -> list[str]:
        return sorted(self._data)

    def status(self) -> SnapshotStatus:
        return SnapshotStatus(
            loaded=self.loaded,
            ok=self.loaded and self._reason is None,
            reason=self._reason,
            loaded_at=self._loaded_at,
            version_count=len(self._data),
        )

    # Refreshing (background thread).

    def load(self) -> None:
        """Read every secret under the prefix and swap the copy in; raise on any failure."""
        prefix = self._client.settings.kv_prefix
        fresh: dict[str, Mapping[str, Any]] = {}
        for name in self._client.list_kv(prefix):
            found = self._client.read_kv(f"{prefix}/{name}")
            if found is not None:
                fresh[name] = MappingProxyType(found[0])
        with self._lock:
            self._data = MappingProxyType(fresh)
            self._loaded_at = time.time()
            if self._reason is not None:
                log.info("secrets snapshot loaded (%d secrets)", len(fresh))
            self._reason = None

    def try_load(self) -> bool:
        """`load()`, but a failure marks the snapshot degraded and keeps the last good copy."""
        try:
            self.load()
        except Exception as exc:  # any failure: keep serving the last good copy
            reason = describe_error(exc)
            with self._lock:
                changed = reason != self._reason
                self._reason = reason
            if changed:
                log.warning("secrets refresh failed, keeping last good copy: %s", reason)
            return False
        return True

    def next_delay(self) -> float:
        """Refresh interval with +/- jitter, so replicas do not refresh in lockstep."""
        return self.interval * (1 + self.jitter * (2 * self._rng() - 1))
