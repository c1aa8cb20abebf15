"""The origin pool: weighted choice, active health checks, passive ejection with backoff,
retries and hedges of idempotent requests within a budget, and the model -> version map.

An idempotent request that an origin has not answered after the hedge delay (past the model's
recent p99, scaled to the request's work) is also sent to another available origin, and the
first useful answer wins; an origin that sends nothing for the read timeout has failed that
attempt. So a frozen origin holds no request for long, while a slow but working pool is rarely
asked twice. A connection that breaks (a pooled connection the origin had just closed) is tried
again once on the same origin before it counts against it; only an origin that cannot be
reached at all is ejected at once."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edge.config import EdgeConfig, OriginSpec
from edge.core.request import UpstreamError, UpstreamResponse
from edge.core.stats import Stats
from edge.runtime.base import Platform
from edge.upstream.latency import Deadlines
from edge.upstream.proof import HEADER as PROOF_HEADER
from edge.upstream.proof import ProofSigner

log = logging.getLogger("edge.upstream")
RETRY_STATUSES = frozenset({502, 503, 504})
BUDGET_WINDOW = 10.0


@dataclass(slots=True)
class Origin:
    spec: OriginSpec
    healthy: bool = True
    consecutive_failures: int = 0
    ejected_until: float = 0.0
    ejections: int = 0
    last_error: str = ""

    @property
    def url(self) -> str:
        return self.spec.url.rstrip("/")

    def available(self, now: float) -> bool:
        return self.healthy and now >= self.ejected_until


class NoOriginAvailable(Exception):
    """Nothing in the pool can take the request."""


@dataclass(slots=True)
class ForwardFailure(Exception):
    """Every attempt failed; `kind` is connect/disconnected/timeout/status, `last` the last
    origin answer."""

    kind: str
    last: UpstreamResponse | None = None
    attempts: int = 0


# What an origin may report of a model: bounded, ASCII, full-match (a hostile or broken origin
# cannot grow the edge's memory or its cache keys with it).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
SCOPES = frozenset({"shared", "subject"})
_MAX_MODELS = 4096


@dataclass
class ModelVersions:
    """(pool, model) -> the version the origin last reported as served, and the model's cache
    scope (`shared`, or `subject`: each subject's answers cached apart)."""

    versions: dict[tuple[str, str], str] = field(default_factory=dict)
    scopes: dict[tuple[str, str], str] = field(default_factory=dict)

    def get(self, pool: str, model: str) -> str:
        return self.versions.get((pool, model), "")

    def scope(self, pool: str, model: str) -> str | None:
        """The model's cache scope; None until an origin has said."""
        return self.scopes.get((pool, model))

    def learn(self, pool: str, model: str, version: str) -> None:
        if _NAME.fullmatch(model) and _NAME.fullmatch(version):
            if len(self.versions) >= _MAX_MODELS and (pool, model) not in self.versions:
                return
            self.versions[(pool, model)] = version

    def learn_scope(self, pool: str, model: str, scope: str) -> None:
        if _NAME.fullmatch(model) and scope in SCOPES:
            if len(self.scopes) >= _MAX_MODELS and (pool, model) not in self.scopes:
                return
            self.scopes[(pool, model)] = scope


def _models_from_listing(doc: Any) -> list[tuple[str, str, str | None]]:
    """(name, served version, cache scope) from GET /v1/models, tolerant of the listing's
    shape."""
    items = doc.get("data") or doc.get("models") or [] if isinstance(doc, Mapping) else doc
    out = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, Mapping):
            continue
        name = item.get("name") or item.get("id")
        served = None
        for key in ("served_version", "serving_version", "current_version", "version"):
            if item.get(key) not in (None, ""):
                served = item[key]
                break
        scope = item.get("cache_scope")
        if isinstance(name, str) and served is not None:
            out.append((name, str(served), scope if isinstance(scope, str) else None))
    return out


class OriginPool:
    def __init__(self, config: EdgeConfig, platform: Platform, stats: Stats) -> None:
        self._config = config
        self._platform = platform
        self._stats = stats
        self.origins = [Origin(spec) for spec in config.origins]
        self.versions = ModelVersions()
        self._last_check = float("-inf")
        self._checking = False
        self._requests: deque[float] = deque()
        self._retries: deque[float] = deque()
        self._rng = random.Random()
        # The caller proof signed onto forwarded requests and the pool's own model listings.
        self.signer = ProofSigner.from_setting(config.caller_key, platform.now)
        self.deadlines = Deadlines(
            config.request_timeout_seconds,
            config.read_timeout_floor_seconds,
            config.read_timeout_factor,
            config.hedge_floor_seconds,
            config.hedge_factor,
        )

    # -- choice -------------------------------------------------------------------------------
    def pools(self) -> set[str]:
        return {o.spec.pool for o in self.origins}

    def choose(self, pool: str, exclude: set[str]) -> Origin | None:
        now = self._platform.monotonic()
        members = [o for o in self.origins if o.spec.pool == pool and o.url not in exclude]
        candidates = [o for o in members if o.available(now)]
        if not candidates:
            # Panic mode: better to try an ejected origin than to refuse outright.
            candidates = members
        if not candidates:
            return None
        total = sum(o.spec.weight for o in candidates)
        pick = self._rng.random() * total
        for origin in candidates:
            pick -= origin.spec.weight
            if pick < 0:
                return origin
        return candidates[-1]

    # -- passive health -----------------------------------------------------------------------
    def _failed(self, origin: Origin, reason: str, decisive: bool) -> None:
        origin.consecutive_failures += 1
        origin.last_error = reason
        if decisive or origin.consecutive_failures >= self._config.eject_after_failures:
            backoff = min(
                self._config.eject_max_seconds,
                self._config.eject_base_seconds * (2 ** min(origin.ejections, 16)),
            )
            origin.ejected_until = self._platform.monotonic() + backoff
            origin.ejections += 1
            origin.consecutive_failures = 0
            self._stats.inc("outpost_edge_ejections_total", origin.url)
            log.warning("ejected origin %s for %.1fs: %s", origin.url, backoff, reason)

    def _succeeded(self, origin: Origin) -> None:
        origin.consecutive_failures = 0
        if origin.ejections and origin.ejected_until <= self._platform.monotonic():
            origin.ejections = 0

    # -- retry budget -------------------------------------------------------------------------
    def _trim(self, q: deque[float], now: float) -> None:
        while q and q[0] < now - BUDGET_WINDOW:
            q.popleft()

    def _may_retry(self) -> bool:
        now = self._platform.monotonic()
        self._trim(self._requests, now)
        self._trim(self._retries, now)
        allowed = max(
            self._config.retry_min_per_window,
            int(len(self._requests) * self._config.retry_budget_ratio),
        )
        if len(self._retries) >= allowed:
            return False
        self._retries.append(now)
        return True

    # -- forwarding ---------------------------------------------------------------------------
    async def forward(
        self,
        pool: str,
        method: str,
        path_qs: str,
        headers: Mapping[str, str],
        body: bytes | None,
        retryable: bool,
        *,
        kind: str = "",
        units: int = 1,
    ) -> tuple[UpstreamResponse, Origin]:
        """Send to one origin of `pool`; an idempotent (`retryable`) request is hedged on
        another origin when it is slow and retried there when it fails. `kind` names what is
        asked (the model) for the latency it is expected to take; `units`, its work."""
        started = self._platform.monotonic()
        self._requests.append(started)
        key = (pool, kind)
        read_timeout = self.deadlines.read_timeout(key, units)
        hedge = self.deadlines.hedge_delay(key, units) if retryable else None
        max_attempts = self._config.max_attempts if retryable else 1
        tried: set[str] = set()
        running: dict[asyncio.Task[UpstreamResponse], Origin] = {}
        failure, last = "unavailable", None
        attempts = 0
        winner: Origin | None = None

        def launch() -> bool:
            nonlocal attempts
            origin = self.choose(pool, tried)
            if origin is None:
                return False
            if attempts:
                self._stats.inc("outpost_edge_retries_total")
            attempts += 1
            tried.add(origin.url)
            attempt = self._attempt(origin, method, path_qs, headers, body, read_timeout, retryable)
            running[asyncio.ensure_future(attempt)] = origin
            return True

        try:
            if not launch():
                raise NoOriginAvailable(pool)
            while running:
                done, _ = await asyncio.wait(
                    running, timeout=hedge, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:  # the hedge delay passed with no answer: ask another origin too
                    hedge = None
                    if attempts < max_attempts and self._may_retry():
                        self._stats.inc("outpost_edge_hedges_total")
                        launch()
                    continue
                for task in done:
                    origin = running.pop(task)
                    try:
                        resp = task.result()
                    except UpstreamError as exc:
                        failure = exc.kind
                        continue
                    if resp.status in RETRY_STATUSES:
                        failure, last = "status", resp
                        continue
                    if resp.status < 500:
                        elapsed = self._platform.monotonic() - started
                        self.deadlines.observe(key, elapsed, units)
                    winner = origin
                    return resp, origin
                if not running and attempts < max_attempts and self._may_retry():
                    launch()
        finally:
            for task, origin in running.items():  # the slower attempts of a hedged request
                task.cancel()
                if winner is not None:  # silent past the hedge delay while another answered
                    self._failed(origin, "outrun by a hedge", decisive=False)
        raise ForwardFailure(failure, last, attempts)

    async def _attempt(
        self,
        origin: Origin,
        method: str,
        path_qs: str,
        headers: Mapping[str, str],
        body: bytes | None,
        read_timeout: float,
        retryable: bool,
    ) -> UpstreamResponse:
        """One attempt on `origin`, with its outcome counted against (or for) the origin. A
        broken connection is tried once more on the same origin, for an idempotent request."""
        url = origin.url + path_qs
        timeout = self._config.request_timeout_seconds
        for again in (retryable, False):
            try:
                resp = await self._platform.fetch(
                    method, url, headers, body, timeout, read_timeout=read_timeout
                )
            except UpstreamError as exc:
                self._stats.inc("outpost_edge_origin_attempts_total", origin.url, exc.kind)
                if exc.kind == "disconnected" and again:
                    continue  # most likely a pooled connection the origin had just closed
                self._failed(origin, str(exc), decisive=exc.kind == "connect")
                raise
            except asyncio.CancelledError:  # a hedge won: this origin is not at fault
                self._stats.inc("outpost_edge_origin_attempts_total", origin.url, "cancelled")
                raise
            if resp.status in RETRY_STATUSES:
                self._stats.inc("outpost_edge_origin_attempts_total", origin.url, "5xx")
                self._failed(origin, f"HTTP {resp.status}", decisive=False)
            else:
                self._stats.inc("outpost_edge_origin_attempts_total", origin.url, "ok")
                self._succeeded(origin)
            return resp
        raise AssertionError("unreachable")  # pragma: no cover

    # -- active health ------------------------------------------------------------------------
    def maybe_check(self) -> None:
        """Start a background health round if one is due (works with and without a loop of
        our own: in Workers this runs via waitUntil on live traffic)."""
        now = self._platform.monotonic()
        if self._checking or now - self._last_check < self._config.health_interval_seconds:
            return
        self._last_check = now
        self._checking = True
        self._platform.spawn(self.check_all())

    async def check_all(self) -> None:
        try:
            await asyncio.gather(*(self._check(o) for o in self.origins))
        finally:
            self._checking = False
            self._last_check = self._platform.monotonic()

    async def _check(self, origin: Origin) -> None:
        timeout = self._config.connect_timeout_seconds
        try:
            resp = await self._platform.fetch(
                "GET", origin.url + "/v2/health/ready", {}, None, timeout
            )
            ok = resp.status == 200
        except UpstreamError as exc:
            ok = False
            origin.last_error = str(exc)
        was = origin.healthy
        origin.healthy = ok
        if ok and not was:
            log.info("origin %s is ready again", origin.url)
            origin.ejected_until = 0.0
        elif not ok and was:
            log.warning("origin %s failed its health check", origin.url)
        if ok and origin.ejected_until > self._platform.monotonic():
            # Passed an active check: readmit before the backoff ends.
            origin.ejected_until = 0.0
        if not ok:
            return
        headers = {"accept": "application/json"}
        if self.signer is not None:  # the listing is not public: prove it is the edge asking
            rid = f"edge-health-{self._rng.getrandbits(64):016x}"
            headers["x-request-id"] = rid
            headers[PROOF_HEADER] = self.signer.header("GET", "/v1/models", rid, "edge:health")
        try:
            resp = await self._platform.fetch(
                "GET", origin.url + "/v1/models", headers, None, timeout
            )
            if resp.status == 200:
                for name, version, scope in _models_from_listing(json.loads(resp.body)):
                    self.versions.learn(origin.spec.pool, name, version)
                    if scope is not None:
                        self.versions.learn_scope(origin.spec.pool, name, scope)
        except (UpstreamError, ValueError) as exc:
            log.debug("model listing from %s failed: %s", origin.url, exc)

    def snapshot(self) -> list[dict[str, Any]]:
        now = self._platform.monotonic()
        return [
            {
                "url": o.url,
                "pool": o.spec.pool,
                "weight": o.spec.weight,
                "healthy": o.healthy,
                "ejected_for_seconds": round(max(0.0, o.ejected_until - now), 3),
                "last_error": o.last_error,
            }
            for o in self.origins
        ]
