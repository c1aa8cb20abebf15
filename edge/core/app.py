"""The edge pipeline: plan, then the steps that await, then finish.

    plan (no I/O) -> [verify a new token] -> rate limit -> [refuse a bad body]
                  -> cache (tier 1, tier 2, coalesced misses) -> origin pool -> finish

`EdgeApp.handle` takes and returns the edge's own message types (`edge.core.request`), so the
same object serves uvicorn (through `edge.adapters.asgi`) and Cloudflare Workers (through
`edge.entry`). Everything it does outside the process goes through the `Platform`.
"""

from __future__ import annotations

import asyncio
import logging

from edge.auth.attestation import AttestationVerifier
from edge.auth.bearer import Authenticator, AuthError, Principal, credentials
from edge.auth.dpop import REPLAYED, DpopError, DpopVerifier, Proof, request_url
from edge.cache import (
    CachedResponse,
    CacheKey,
    EdgeCache,
    make_private,
    with_owner,
    with_version,
)
from edge.config import EdgeConfig
from edge.core.endpoints import Endpoints
from edge.core.finish import Compressor, Cors, conditional, stamp
from edge.core.plan import Plan, Planner, new_request_id
from edge.core.problems import finish_problem, problem
from edge.core.request import EdgeRequest, EdgeResponse
from edge.core.stats import Stats
from edge.limits.quota import MemoryStore, Quotas
from edge.limits.stores import Guarded, QuotaUnavailable
from edge.runtime.base import Platform
from edge.tracing import FinishedSpan
from edge.upstream.forward import forward_headers, from_upstream, upstream_problem
from edge.upstream.pool import ForwardFailure, NoOriginAvailable, OriginPool

log = logging.getLogger("edge")

# How the origin says whether a model's answers may be shared between subjects.
SCOPE_HEADER = "x-outpost-cache-scope"


class EdgeApp:
    """One edge instance: shared state (caches, buckets, pool) lives here."""

    def __init__(self, config: EdgeConfig, platform: Platform) -> None:
        self.config = config
        self.platform = platform
        self.stats = Stats()
        self.auth = Authenticator(config, platform)
        self.dpop = DpopVerifier(config.dpop, platform)
        self.attestation = AttestationVerifier(
            config.attestation,
            platform,
            leeway=config.leeway_seconds,
            count=lambda *labels: self.stats.inc("outpost_edge_attestation_total", *labels),
        )
        self.quotas = Quotas(config)
        self.local_quota = MemoryStore(platform.monotonic)
        shared = platform.quota_store(config)
        self.shared_quota = (
            None
            if shared is None
            else Guarded(
                shared,
                self.local_quota,
                config.quota_fail_mode,
                config.quota_timeout_seconds,
                lambda mode: self.stats.inc("outpost_edge_quota_store_errors_total", mode),
            )
        )
        self.cache = EdgeCache(config, platform.now, platform.cache_tier2)
        self.pool = OriginPool(config, platform, self.stats)
        self.planner = Planner(config, self.auth, self.pool.versions, platform.now)
        self.spans = platform.span_sink(config)
        self.endpoints = Endpoints(platform, self.pool, self.cache, self.stats)
        self.cors = Cors(config.cors_origins)
        self.compressor = Compressor(config, platform.gzip)

    async def handle(self, req: EdgeRequest) -> EdgeResponse:
        """The answer to `req`: always a response, a problem+json one for every failure."""
        try:
            plan = self.planner.plan(req)
        except Exception:  # a bug in planning: still one problem answer, never a bare 500
            rid = new_request_id()
            log.exception("request_id=%s unexpected error while planning", rid)
            self.stats.inc("outpost_edge_requests_total", "unplanned", "500")
            return problem(500, "internal", "Internal error.", rid)
        try:
            resp = await self._run(req, plan)
        except Exception:
            log.exception(
                "request_id=%s trace_id=%s unexpected error", plan.rid, plan.span.trace_id
            )
            resp = problem(500, "internal", "Internal error.", plan.rid)
        self._finish(req, resp, plan)
        self.stats.inc("outpost_edge_requests_total", plan.route_name, str(resp.status))
        if plan.cache_state is not None:
            self.stats.inc("outpost_edge_cache_total", plan.cache_state)
        if self.spans is not None and plan.span.sampled:
            self.spans.emit(self._finished_span(req, resp, plan))
        return resp

    def _finished_span(self, req: EdgeRequest, resp: EdgeResponse, plan: Plan) -> FinishedSpan:
        attributes: dict[str, str | int | float | bool] = {
            "http.request.method": req.method,
            "http.route": plan.route_name,
            "outpost.request_id": plan.rid,
            "outpost.runtime": self.platform.name,
        }
        if plan.cache_state is not None:
            attributes["outpost.cache"] = plan.cache_state
        if plan.model:
            attributes["outpost.model.name"] = plan.model
            attributes["outpost.pool"] = plan.pool
        version = resp.headers.get("x-model-version")
        if version:
            attributes["outpost.model.version"] = version
        if resp.status == 429:
            attributes["outpost.rate_limited"] = True
        return plan.span.finish(
            f"{req.method} {plan.route_name}",
            end=self.platform.now(),
            status_code=resp.status,
            attributes=attributes,
        )

    async def _run(self, req: EdgeRequest, plan: Plan) -> EdgeResponse:
        if plan.answer is not None:
            return plan.answer
        if plan.local is not None:
            if plan.local == "preflight":
                return self.cors.preflight(req)
            return self.endpoints.answer(plan.local, req, plan.rid)
        self.pool.maybe_check()
        if plan.verify:
            refused = await self._authenticate(req, plan)
            if refused is not None:
                return refused
        assert plan.route is not None
        if self.attestation.mode_for(plan.route.rate_class) != "off":
            attested = await self.attestation.check(
                plan.route.rate_class, req.headers.get(self.config.attestation.header)
            )
            if not attested.allowed:
                headers = {"retry-after": "5"} if attested.status == 503 else None
                return problem(
                    attested.status, "attestation-failed", attested.detail, plan.rid, headers
                )
        limited = await self._limit(plan)
        if limited is not None:
            return limited
        if plan.refusal is not None:
            return plan.refusal
        if plan.key is None:
            return await self._forward(req, plan)
        return await self._cached(req, plan, plan.key)

    async def _authenticate(self, req: EdgeRequest, plan: Plan) -> EdgeResponse | None:
        """Verify the caller's token (and, for a token bound to a device key, the request's
        DPoP proof), then complete the plan; the refusal to answer otherwise."""
        assert plan.route is not None and plan.route.scope is not None
        authorization = req.headers.get("authorization")
        try:
            principal = await self.auth.authenticate(authorization, plan.route.scope)
        except AuthError as exc:
            self.stats.inc("outpost_edge_auth_failures_total", str(exc.status))
            slug = "forbidden" if exc.status == 403 else "unauthorized"
            headers = {"www-authenticate": exc.www_authenticate()}
            return problem(exc.status, slug, exc.description, plan.rid, headers)
        try:
            route_class = plan.route.rate_class
            proof = await self._check_proof(req, route_class, authorization or "", principal)
            plan.once = self.dpop.once(proof) if proof is not None else None
        except DpopError as exc:
            return self._proof_refused(exc, plan.rid)
        self.planner.complete(plan, req, principal)
        return None

    def _proof_refused(self, exc: DpopError, rid: str) -> EdgeResponse:
        """The 401 for a refused DPoP proof, with its challenge; counted as an auth failure."""
        self.stats.inc("outpost_edge_auth_failures_total", str(exc.status))
        headers = {"www-authenticate": self.dpop.error_header(exc)}
        return problem(exc.status, "unauthorized", exc.description, rid, headers)

    async def _check_proof(
        self, req: EdgeRequest, route_class: str, authorization: str, principal: Principal
    ) -> Proof | None:
        found = credentials(authorization)
        scheme, token = found if found is not None else ("bearer", "")
        if principal.jkt is None and scheme == "bearer" and route_class not in self.dpop_required:
            return None  # an unbound token, used as one: nothing to prove
        url = request_url(
            req.scheme, req.headers.get("host", ""), req.path, self.config.dpop.public_url
        )
        return await self.dpop.check_request(
            scheme=scheme,
            access_token=token,
            token_jkt=principal.jkt,
            proof=req.headers.get("dpop"),
            method=req.method,
            url=url,
            route_class=route_class,
        )

    @property
    def dpop_required(self) -> tuple[str, ...]:
        return self.config.dpop.require_for

    async def _limit(self, plan: Plan) -> EdgeResponse | None:
        """Charge the request to its quota buckets (their header fields go into the plan); the
        429 (or 413, 503) to answer when it may not go on."""
        route = plan.route
        assert route is not None
        work: float | None = None
        if plan.key is not None:  # a parsed inference body: its work is known
            images = route.rate_class == "images"
            work = plan.work.inputs if images else plan.work.tokens
        app = plan.principal.app if plan.principal is not None else ""
        buckets = self.quotas.buckets(route.rate_class, plan.subject, app, plan.model, work)
        too_big = self.quotas.too_large(buckets)
        if too_big is not None:
            return problem(
                413,
                "work-too-large",
                f"The request asks for {int(too_big.cost)} units of work; at most "
                f"{int(too_big.burst)} fit the '{too_big.name}' quota at once. Split it.",
                plan.rid,
            )
        if self.shared_quota is None:
            outcome = self.local_quota.take_now(buckets)
        else:
            try:
                outcome = await self.shared_quota.take(buckets, plan.once)
            except QuotaUnavailable:
                headers = {"retry-after": "1"}
                detail = "Quotas cannot be checked right now."
                return problem(503, "quota-unavailable", detail, plan.rid, headers)
            if outcome.reused:  # another replica accepted this proof already
                return self._proof_refused(DpopError("invalid_dpop_proof", REPLAYED), plan.rid)
        plan.limit_headers = self.quotas.headers(buckets, outcome)
        if outcome.allowed:
            return None
        self.stats.inc("outpost_edge_rate_limited_total", route.name)
        wait = outcome.retry_after
        return problem(429, "rate-limited", f"Too many requests; retry in {wait} s.", plan.rid)

    def _finish(self, req: EdgeRequest, resp: EdgeResponse, plan: Plan) -> None:
        stamp(resp, plan.rid, plan.limit_headers)
        finish_problem(resp, req.path, plan.span.trace_id)
        self.cors.apply(req, resp)
        conditional(req, resp)
        self.compressor.apply(req, resp, plan.served_from)

    # -- forwarding ---------------------------------------------------------------------------
    async def _forward(self, req: EdgeRequest, plan: Plan) -> EdgeResponse:
        """A request that is not cached: to one origin of the primary pool (retried elsewhere
        when its route allows)."""
        assert plan.route is not None
        try:
            up, _ = await self.pool.forward(
                "primary",
                req.method,
                req.target,
                forward_headers(
                    req, plan.rid, plan.span, signer=self.pool.signer, subject=plan.subject
                ),
                req.body or None,
                plan.route.retryable,
                kind=plan.route.name,
            )
        except (ForwardFailure, NoOriginAvailable) as exc:
            return upstream_problem(exc, plan.rid, "primary")
        return from_upstream(up)

    # -- cached inference ---------------------------------------------------------------------
    def _from_entry(self, plan: Plan, entry: CachedResponse, state: str) -> EdgeResponse:
        plan.cache_state = state
        plan.served_from = entry
        headers = dict(entry.headers)
        headers["x-cache"] = state
        headers["age"] = str(max(0, int(self.platform.now() - entry.stored_at)))
        return EdgeResponse(entry.status, headers, entry.body)

    async def _cached(self, req: EdgeRequest, plan: Plan, key: CacheKey) -> EdgeResponse:
        """A cacheable request: a fresh entry answers it; otherwise one request per key goes to
        the origin (concurrent identical requests share its answer), with the stale entry kept
        as the answer if the origins fail."""
        if not plan.read_cache:
            return await self._miss(req, plan, key, None, "BYPASS")
        entry = self.cache.lookup(key)
        if entry is None and self.platform.cache_tier2 is not None:
            entry = await self.cache.from_tier2(key)
        if entry is not None and self.cache.is_fresh(entry):
            return self._from_entry(plan, entry, "HIT")
        leader = self.cache.inflight.get(key)
        if leader is not None:
            shared: EdgeResponse = await asyncio.shield(leader)
            plan.cache_state = "HIT"
            out = EdgeResponse(shared.status, dict(shared.headers), shared.body)
            if out.status == 200:
                out.headers["x-cache"] = "HIT"
            return out
        fut: asyncio.Future[EdgeResponse] = asyncio.get_running_loop().create_future()
        self.cache.inflight[key] = fut
        try:
            resp = await self._miss(req, plan, key, entry, "MISS")
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: followers re-raise it themselves
            raise
        finally:
            self.cache.inflight.pop(key, None)
        if not fut.done():
            fut.set_result(EdgeResponse(resp.status, dict(resp.headers), resp.body))
        return resp

    async def _miss(
        self,
        req: EdgeRequest,
        plan: Plan,
        key: CacheKey,
        stale: CachedResponse | None,
        state: str,
    ) -> EdgeResponse:
        """Ask the plan's pool; keep a cacheable answer under the version that served it."""
        try:
            up, _ = await self.pool.forward(
                plan.pool,
                "POST",
                req.target,
                forward_headers(
                    req,
                    plan.rid,
                    plan.span,
                    signer=self.pool.signer,
                    subject=plan.subject,
                    method="POST",
                ),
                req.body,
                True,
                kind=plan.model,
                units=plan.work.inputs,
            )
        except (ForwardFailure, NoOriginAvailable) as exc:
            if stale is not None:
                log.warning("request_id=%s serving stale: origins failed", plan.rid)
                return self._from_entry(plan, stale, "STALE")
            plan.cache_state = "ERROR"
            return upstream_problem(exc, plan.rid, plan.pool)
        if up.status >= 500 and stale is not None:
            return self._from_entry(plan, stale, "STALE")
        pinned = plan.match is not None and plan.match.version
        served_name = up.headers.get("x-model-name", "")
        served_version = up.headers.get("x-model-version", "")
        scope = up.headers.get(SCOPE_HEADER)
        if up.status == 200 and served_version and not pinned:
            self.pool.versions.learn(plan.pool, plan.model, served_version)
            if served_name and served_name != plan.model:
                self.pool.versions.learn(plan.pool, served_name, served_version)
        if up.status == 200 and scope is not None:
            self.pool.versions.learn_scope(plan.pool, plan.model, scope)
        private = scope != "shared"
        if up.status == 200 and plan.store:
            entry = self.cache.entry_for(up.status, up.headers, up.body)
            if entry is not None:
                if not pinned and served_version:
                    key = with_version(key, served_version)
                key = with_owner(key, "" if not private else plan.subject)
                if private:
                    entry.headers["cache-control"] = make_private(
                        entry.headers.get("cache-control")
                    )
                self.cache.put(key, entry)
                if self.platform.cache_tier2 is not None:
                    self.platform.spawn(self.cache.put_tier2(key, entry))
        plan.cache_state = state
        resp = from_upstream(up)
        resp.headers["x-cache"] = state
        if up.status == 200 and private and "cache-control" in resp.headers:
            resp.headers["cache-control"] = make_private(resp.headers["cache-control"])
        return resp
