"""The origin's Vault component: keeps the token alive and the secrets snapshot fresh.

One asyncio task wakes for whichever comes first: the token's renewal point (2/3 of its TTL), the
next jittered snapshot refresh, or the next retry while Vault is failing. All hvac calls run in
worker threads. Startup fails only when no copy of the secrets could ever be loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from origin.identity.metrics import VaultMetrics
from origin.secrets.client import (
    AppRoleCredentials,
    CredentialsError,
    VaultClient,
    load_credentials,
)
from origin.secrets.settings import VaultSettings
from origin.secrets.snapshot import SecretsSnapshot, describe_error

log = logging.getLogger("outpost.origin.secrets")


class SecretsStartupError(RuntimeError):
    """The origin must not start: no copy of its secrets was ever loaded."""


def health_report(ready: bool, degraded: list[str], **details: object) -> dict[str, Any]:
    """The origin component health shape: `{"ready", "degraded": [reason, ...], ...}`."""
    return {"ready": ready, "degraded": degraded, **details}


# Extra periodic jobs (e.g. the JWKS refresh) run by the same loop: (interval, blocking fn).
Job = tuple[float, Callable[[], bool]]


class SecretsComponent:
    """Vault client + secrets snapshot + background upkeep. `router` is None (no HTTP surface)."""

    name = "vault"
    router = None

    def __init__(
        self,
        settings: VaultSettings,
        *,
        credentials: AppRoleCredentials | None = None,
        metrics: VaultMetrics | None = None,
    ) -> None:
        self.settings = settings
        self._credentials = credentials
        self.metrics = metrics or VaultMetrics()
        self.client: VaultClient | None = None
        self.snapshot: SecretsSnapshot | None = None
        self._jobs: list[tuple[str, float, Callable[[], bool]]] = []
        self._job_failing: dict[str, bool] = {}
        self._token_reason: str | None = None
        self._task: asyncio.Task[None] | None = None

    def add_job(self, name: str, interval: float, fn: Callable[[], bool]) -> None:
        """Run blocking `fn` every `interval` s (jittered); it returns False when Vault failed."""
        self._jobs.append((name, interval, fn))

    def _build(self) -> None:
        if self.client is not None:
            return
        creds = self._credentials or load_credentials(self.settings)
        self.client = VaultClient(self.settings, creds)
        self.snapshot = SecretsSnapshot(self.client)

    async def start(self) -> None:
        try:
            self._build()
        except CredentialsError as exc:
            raise SecretsStartupError(str(exc)) from exc
        assert self.snapshot is not None
        deadline = time.monotonic() + self.settings.startup_timeout
        while not await asyncio.to_thread(self.snapshot.try_load):
            if time.monotonic() >= deadline:
                raise SecretsStartupError(
                    f"could not load secrets from Vault at {self.settings.addr}: "
                    f"{self.snapshot.status().reason}"
                )
            await asyncio.sleep(min(0.5, self.settings.retry_interval))
        self._observe()
        for name, _, fn in self._jobs:
            self._job_failing[name] = not await asyncio.to_thread(fn)
        self._task = asyncio.create_task(self._run(), name="outpost-vault-upkeep")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _observe(self) -> None:
        assert self.snapshot is not None
        st = self.snapshot.status()
        self.metrics.vault_up.set(1 if not self.degraded_reasons() else 0)
        if st.loaded_at:
            self.metrics.snapshot_time.set(st.loaded_at)

    def degraded_reasons(self) -> list[str]:
        reasons = []
        if self.snapshot is not None and self.snapshot.status().reason:
            reasons.append(f"secrets: {self.snapshot.status().reason}")
        if self._token_reason:
            reasons.append(f"vault token: {self._token_reason}")
        reasons += [f"{name}: vault unreachable" for name, bad in self._job_failing.items() if bad]
        return reasons

    def health(self) -> dict[str, Any]:
        """Ready once secrets were loaded; degraded (still ready) while Vault is failing."""
        loaded = self.snapshot is not None and self.snapshot.loaded
        st = self.snapshot.status() if self.snapshot else None
        return health_report(
            loaded,
            self.degraded_reasons(),
            secrets_loaded_at=st.loaded_at if st else None,
        )

    def _delay(self, interval: float, failing: bool) -> float:
        base = min(interval, self.settings.retry_interval) if failing else interval
        jitter = self.settings.refresh_jitter
        return base * (1 + jitter * (2 * random.random() - 1))

    async def _guard(self, what: str, step: Callable[[], Awaitable[None]]) -> None:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception:  # the loop must survive anything; reasons are tracked per step
            log.exception("vault upkeep step %s failed unexpectedly", what)

    async def _run(self) -> None:
        assert self.client is not None and self.snapshot is not None
        client, snapshot = self.client, self.snapshot
        now = time.monotonic()
        next_kv = now + self._delay(snapshot.interval, False)
        next_job = {name: now + self._delay(iv, False) for name, iv, _ in self._jobs}
        next_token_retry = 0.0
        while True:
            now = time.monotonic()
            renew_at = client.token.renew_at if client.token else now
            renew_at = max(renew_at, next_token_retry)
            wake = min([next_kv, renew_at, *next_job.values()])
            await asyncio.sleep(max(0.02, wake - now))
            now = time.monotonic()

            if now >= renew_at:

                async def renew() -> None:
                    nonlocal next_token_retry
                    before = client.token
                    try:
                        after = await asyncio.to_thread(client.ensure_token)
                    except Exception as exc:
                        self._token_reason = describe_error(exc)
                        next_token_retry = time.monotonic() + self._delay(1e9, True)
                        return
                    self._token_reason = None
                    if before is None or after.accessor != before.accessor:
                        self.metrics.token_renewals.labels("login").inc()
                    else:
                        self.metrics.token_renewals.labels("renew").inc()

                await self._guard("token", renew)

            if now >= next_kv:

                async def refresh() -> None:
                    nonlocal next_kv
                    ok = await asyncio.to_thread(snapshot.try_load)
                    if ok:
                        self._token_reason = None
                    next_kv = time.monotonic() + self._delay(snapshot.interval, not ok)

                await self._guard("secrets", refresh)

            for name, interval, fn in self._jobs:
                if now >= next_job[name]:
                    ok = await asyncio.to_thread(fn)
                    self._job_failing[name] = not ok
                    next_job[name] = time.monotonic() + self._delay(interval, not ok)
            self._observe()
