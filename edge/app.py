"""The edge pipeline: request id -> route -> auth -> rate limit -> cache -> origin pool.

`EdgeApp.handle` takes and returns the edge's own message types, so the same object serves
uvicorn (through `edge.asgi`) and Cloudflare Workers (through `edge.entry`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import random
import re
from dataclasses import dataclass
from urllib.parse import quote

from edge.auth import Authenticator, AuthError, Principal
from edge.cache import CacheKey, EdgeCache, body_digest, cache_key, client_bypass, with_version
from edge.config import EdgeConfig
from edge.messages import EdgeRequest, EdgeResponse, UpstreamResponse
from edge.problems import problem
from edge.ratelimit import RateLimiter
from edge.routes import Match, MethodNotAllowed, Route, match
from edge.routing import ForwardFailure, NoOriginAvailable, OriginPool
from edge.runtime.base import CachedResponse, Platform
from edge.stats import Stats

log = logging.getLogger("edge")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_NOT_FORWARDED = HOP_BY_HOP | {
    "host",
    "content-length",
    "accept-encoding",
    "x-forwarded-for",
    "x-real-ip",
    "cf-connecting-ip",
}
_NOT_RETURNED = HOP_BY_HOP | {"content-length", "content-encoding", "date", "server"}
_EXPOSED = (
    "x-request-id, x-cache, x-model-name, x-model-version, etag, retry-after, "
    "ratelimit, ratelimit-policy"
)
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_COMPRESSIBLE = ("application/json", "application/problem+json", "text/")


# Request bodies up to this size are remembered once parsed (raw bytes -> model field and
# canonical digest), so a repeated request (a cache hit) skips JSON parsing and re-encoding.
_PARSED_MAX_BODY = 4096
_PARSED_MAX_ENTRIES = 4096


_rng = random.Random(os.urandom(32))  # ids correlate logs; they are not secrets
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (4 << 76) | (0x8000 << 48)


def new_request_id() -> str:
    """A random (version 4) UUID as 32 hex digits, without building a `uuid.UUID` or making a
    getrandom() syscall per request."""
    return "%032x" % (_rng.getrandbits(128) & _UUID4_CLEAR | _UUID4_SET)


def _is_json(content_type: str | None) -> bool:
    """Whether a request's Content-Type is JSON (absent counts: clients often omit it)."""
    if content_type is None or content_type == "application/json":
        return True
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


@dataclass(slots=True)
class FreshHit:
    """A fresh cache hit `EdgeApp.take_hit` let through: what its response is made of. `req`,
    `entry` and the request's kind decide all of it but the per-request values: the request id,
    the entry's age and the rate-limit headers (`extra`)."""

    req: EdgeRequest
    entry: CachedResponse
    rid: str
    age: str
    extra: dict[str, str]


class EdgeApp:
    """One edge instance: shared state (caches, buckets, pool) lives here."""

    def __init__(self, config: EdgeConfig, platform: Platform) -> None:
        self.config = config
        self.platform = platform
        self.stats = Stats()
        self.auth = Authenticator(config, platform)
        self.limiter = RateLimiter(platform.monotonic)
        self.cache = EdgeCache(config, platform.now, platform.cache_tier2)
        self.pool = OriginPool(config, platform, self.stats)
        self._pools = self.pool.pools()
        self._cors_any = "*" in config.cors_origins
        self._cors = frozenset(config.cors_origins)
        self._parsed: dict[bytes, tuple[str, bytes]] = {}
        # Bodies `answer_now` can recognise: only those small enough to be remembered parsed.
        self.answerable_body_bytes = min(_PARSED_MAX_BODY, config.max_request_bytes)
        self._openapi: bytes | None = None

    # -- entry point ----------------------------------------------------------------------------
    async def handle(self, req: EdgeRequest) -> EdgeResponse:
        rid = self._request_id(req)
        extra: dict[str, str] = {}
        route = "unmatched"
        try:
            resp, route = await self._dispatch(req, rid, extra)
        except Exception:
            log.exception("request_id=%s unexpected error", rid)
            resp = problem(500, "internal", "Internal error.", rid)
        self._finish(req, resp, rid, extra)
        self.stats.inc("outpost_edge_requests_total", route, str(resp.status))
        return resp

    def answer_now(self, req: EdgeRequest) -> EdgeResponse | None:
        """The answer to a request that needs no I/O: a fresh tier-1 cache hit for a caller whose
        token was verified before. None, with nothing counted or consumed, for any other request
        (a first sight of a body or token, a miss, a client cache directive, an error):
        `handle` answers those, and would answer this one the same way."""
        taken = self.take_hit(req)
        return self.hit_answer(taken) if isinstance(taken, FreshHit) else taken

    def take_hit(self, req: EdgeRequest) -> FreshHit | EdgeResponse | None:
        """`answer_now`'s decision, with an allowed hit not yet built into a response: counted
        and rate-limited already, it is answered by `hit_answer` or, on the local server, by an
        answer encoded before for the same kind of request (`edge.hitpath`). A 429 comes back
        whole; None as for `answer_now`."""
        h = req.headers
        if req.method != "POST" or "cache-control" in h or "pragma" in h:
            return None
        try:
            m = match(req.method, req.path)
        except MethodNotAllowed:
            return None
        if m is None or not m.route.cacheable or not _is_json(h.get("content-type")):
            return None
        parsed = self._parsed.get(req.body)  # only bodies seen (and parsed) before
        if parsed is None:
            return None
        if m.route.scope is None:
            subject = f"ip:{req.client_ip}"
        else:
            principal = self.auth.known(h.get("authorization"), m.route.scope)
            if principal is None:
                return None
            subject = f"sub:{principal.subject}"
        model = m.model or parsed[0]
        pool = self._pool_for(model, req, subject)
        entry = self.cache.fresh(self._key(req, m, pool, model, parsed[1]))
        if entry is None:
            return None
        # Answered from now on: count and limit it exactly as `handle` does.
        rid = self._request_id(req)
        self.pool.maybe_check()
        extra: dict[str, str] = {}
        limited = self._limited(m.route, subject, rid, extra)
        if limited is not None:
            self._finish(req, limited, rid, extra)
            self.stats.inc("outpost_edge_requests_total", m.route.name, str(limited.status))
            return limited
        self.stats.inc("outpost_edge_cache_total", "HIT")
        self.stats.inc("outpost_edge_requests_total", m.route.name, str(entry.status))
        return FreshHit(req, entry, rid, self._age(entry), extra)

    def hit_answer(self, hit: FreshHit) -> EdgeResponse:
        """The response to a hit `take_hit` let through, as `handle` would answer it."""
        resp = self._from_entry(hit.req, hit.entry, "HIT", hit.age)
        self._finish(hit.req, resp, hit.rid, hit.extra)
        return resp

    @staticmethod
    def _request_id(req: EdgeRequest) -> str:
        given = req.headers.get("x-request-id")
        return given if given and _REQUEST_ID.fullmatch(given) else new_request_id()

    def _limited(
        self, route: Route, subject: str, rid: str, extra: dict[str, str]
    ) -> EdgeResponse | None:
        """Take one token from the caller's bucket (its headers go into `extra`); the 429 to
        answer when it was empty, else None."""
        decision = self.limiter.check(
            route.rate_class, subject, self.config.policy_for(route.rate_class)
        )
        extra.update(decision.headers)
        if decision.allowed:
            return None
        self.stats.inc("outpost_edge_rate_limited_total", route.name)
        wait = decision.retry_after
        return problem(429, "rate-limited", f"Too many requests; retry in {wait} s.", rid)

    async def _dispatch(
        self, req: EdgeRequest, rid: str, extra: dict[str, str]
    ) -> tuple[EdgeResponse, str]:
        if req.method == "OPTIONS" and "access-control-request-method" in req.headers:
            return self._preflight(req), "preflight"
        try:
            m = match(req.method, req.path)
        except MethodNotAllowed as exc:
            allow = ", ".join(exc.allowed)
            return problem(
                405, "method-not-allowed", f"Use {allow}.", rid, {"allow": allow}
            ), "unmatched"
        if m is None:
            return problem(404, "not-found", "No such endpoint.", rid), "unmatched"
        route = m.route
        if route.local:
            return self._local(route.name, rid), route.name
        self.pool.maybe_check()
        if len(req.body) > self.config.max_request_bytes:
            limit = self.config.max_request_bytes
            return problem(
                413, "too-large", f"Request body exceeds {limit} bytes.", rid
            ), route.name
        principal: Principal | None = None
        if route.scope is not None:
            try:
                principal = await self.auth.authenticate(
                    req.headers.get("authorization"), route.scope
                )
            except AuthError as exc:
                self.stats.inc("outpost_edge_auth_failures_total", str(exc.status))
                slug = "forbidden" if exc.status == 403 else "unauthorized"
                return problem(
                    exc.status,
                    slug,
                    exc.description,
                    rid,
                    {"www-authenticate": exc.www_authenticate()},
                ), route.name
        subject = f"sub:{principal.subject}" if principal else f"ip:{req.client_ip}"
        limited = self._limited(route, subject, rid, extra)
        if limited is not None:
            return limited, route.name
        if route.cacheable:  # forwarded headers are built only on a miss
            return await self._inference(req, m, rid, subject), route.name
        return await self._plain(req, m, rid, self._forward_headers(req, rid)), route.name

    # -- local endpoints ------------------------------------------------------------------------
    def _local(self, name: str, rid: str) -> EdgeResponse:
        if name == "openapi":
            if self._openapi is None:
                from edge.openapi import openapi_document  # only when asked: Worker cold start

                self._openapi = json.dumps(openapi_document(), separators=(",", ":")).encode()
            return EdgeResponse(
                200,
                {"content-type": "application/json", "cache-control": "public, max-age=300"},
                self._openapi,
            )
        if name == "metrics":
            exported = self.platform.metrics_text(self.stats)
            if exported is None:
                return problem(404, "not-found", "Metrics are not served here.", rid)
            ctype, body = exported
            return EdgeResponse(200, {"content-type": ctype, "cache-control": "no-store"}, body)
        now = self.platform.monotonic()
        origins = self.pool.snapshot()
        ready = any(o.available(now) for o in self.pool.origins if o.spec.pool == "primary")
        body = {
            "status": "ok" if ready else "degraded",
            "platform": self.platform.name,
            "origins": origins,
            "models": {
                f"{pool}/{model}": version
                for (pool, model), version in sorted(self.pool.versions.versions.items())
            },
            "cache_entries": len(self.cache),
            "cache_bytes": self.cache.size_bytes,
        }
        return EdgeResponse(
            200,
            {"content-type": "application/json", "cache-control": "no-store"},
            json.dumps(body).encode(),
        )

    # -- forwarding -----------------------------------------------------------------------------
    def _forward_headers(self, req: EdgeRequest, rid: str) -> dict[str, str]:
        # Headers named in Connection are hop-by-hop too (RFC 9110 §7.6.1).
        listed = {t.strip().lower() for t in req.headers.get("connection", "").split(",")}
        out = {k: v for k, v in req.headers.items() if k not in _NOT_FORWARDED and k not in listed}
        out["x-request-id"] = rid
        out["accept-encoding"] = "identity"
        if req.client_ip:
            out["x-forwarded-for"] = req.client_ip
        return out

    @staticmethod
    def _path_qs(req: EdgeRequest) -> str:
        # The path arrives percent-decoded: re-encode it so control characters, `#` or `?`
        # inside a segment reach the origin as data, never as URL syntax.
        path = quote(req.path, safe=_PATH_SAFE)
        return f"{path}?{req.query}" if req.query else path

    @staticmethod
    def _from_upstream(up: UpstreamResponse) -> EdgeResponse:
        headers = {k: v for k, v in up.headers.items() if k not in _NOT_RETURNED}
        return EdgeResponse(up.status, headers, up.body)

    def _upstream_problem(self, exc: Exception, rid: str, pool: str) -> EdgeResponse:
        if isinstance(exc, ForwardFailure) and exc.last is not None:
            return self._from_upstream(exc.last)
        if isinstance(exc, ForwardFailure) and exc.kind == "timeout":
            log.warning("request_id=%s origins timed out (pool %s)", rid, pool)
            return problem(504, "gateway-timeout", "The origin did not answer in time.", rid)
        if isinstance(exc, ForwardFailure) and exc.kind == "connect":
            log.warning("request_id=%s no origin reachable (pool %s)", rid, pool)
            return problem(502, "bad-gateway", "No origin could be reached.", rid)
        log.warning("request_id=%s no origin available (pool %s)", rid, pool)
        return problem(503, "unavailable", "No origin is available.", rid, {"retry-after": "1"})

    async def _plain(
        self, req: EdgeRequest, m: Match, rid: str, headers: dict[str, str]
    ) -> EdgeResponse:
        try:
            up, _ = await self.pool.forward(
                "primary",
                req.method,
                self._path_qs(req),
                headers,
                req.body or None,
                m.route.retryable,
            )
        except (ForwardFailure, NoOriginAvailable) as exc:
            return self._upstream_problem(exc, rid, "primary")
        return self._from_upstream(up)

    # -- cached inference -----------------------------------------------------------------------
    def _pool_for(self, model: str, req: EdgeRequest, subject: str) -> str:
        rule = self.config.canary.get(model)
        if rule is None or rule.pool not in self._pools:
            return "primary"
        if req.headers.get("x-outpost-canary") == "1":
            return rule.pool
        if rule.percent <= 0:
            return "primary"
        digest = hashlib.sha256(f"{model}\x00{subject}".encode()).digest()
        return (
            rule.pool
            if int.from_bytes(digest[:4], "big") % 10000 < rule.percent * 100
            else "primary"
        )

    def _age(self, entry: CachedResponse) -> str:
        return str(max(0, int(self.platform.now() - entry.stored_at)))

    def _from_entry(
        self, req: EdgeRequest, entry: CachedResponse, state: str, age: str | None = None
    ) -> EdgeResponse:
        headers = dict(entry.headers)
        headers["x-cache"] = state
        headers["age"] = self._age(entry) if age is None else age
        body = entry.body
        if len(body) >= self.config.gzip_min_bytes and "gzip" in req.headers.get(
            "accept-encoding", ""
        ):
            if entry.gzipped is None:
                entry.gzipped = self.platform.gzip(body, self.config.gzip_level)
            body = entry.gzipped
            headers["content-encoding"] = "gzip"
            headers["vary"] = "accept-encoding"
        return EdgeResponse(entry.status, headers, body)

    def _key(self, req: EdgeRequest, m: Match, pool: str, model: str, digest: bytes) -> CacheKey:
        version = m.version or self.pool.versions.get(pool, model)
        return cache_key(pool, model, version, req.path, digest, req.headers.get("accept", ""))

    def _hit(self, req: EdgeRequest, entry: CachedResponse) -> EdgeResponse:
        self.stats.inc("outpost_edge_cache_total", "HIT")
        return self._from_entry(req, entry, "HIT")

    async def _inference(self, req: EdgeRequest, m: Match, rid: str, subject: str) -> EdgeResponse:
        if not _is_json(req.headers.get("content-type")):
            return problem(415, "unsupported-media-type", "Send application/json.", rid)
        parsed = self._parsed.get(req.body)
        if parsed is None:
            try:
                payload = json.loads(req.body)
            except (ValueError, UnicodeDecodeError, RecursionError):
                return problem(400, "malformed", "The body is not valid JSON.", rid)
            if not isinstance(payload, dict):
                return problem(400, "malformed", "The body must be a JSON object.", rid)
            named = payload.get("model")
            parsed = (named if isinstance(named, str) else "", body_digest(payload))
            if len(req.body) <= _PARSED_MAX_BODY:
                if len(self._parsed) >= _PARSED_MAX_ENTRIES:
                    self._parsed.clear()
                self._parsed[req.body] = parsed
        model = m.model or parsed[0]
        digest = parsed[1]
        pool = self._pool_for(model, req, subject)
        cc, pragma = req.headers.get("cache-control"), req.headers.get("pragma")
        no_read, no_store = client_bypass(cc, pragma) if cc or pragma else (False, False)
        key = self._key(req, m, pool, model, digest)
        stale: CachedResponse | None = None
        if not no_read:
            entry = self.cache.lookup(key)
            if entry is None and self.platform.cache_tier2 is not None:
                entry = await self.cache.from_tier2(key)
            if entry is not None:
                if self.cache.is_fresh(entry):
                    return self._hit(req, entry)
                stale = entry
            leader = self.cache.inflight.get(key)
            if leader is not None:
                shared: EdgeResponse = await asyncio.shield(leader)
                self.stats.inc("outpost_edge_cache_total", "HIT")
                out = EdgeResponse(shared.status, dict(shared.headers), shared.body)
                if out.status == 200:
                    out.headers["x-cache"] = "HIT"
                return out
            fut: asyncio.Future[EdgeResponse] = asyncio.get_running_loop().create_future()
            self.cache.inflight[key] = fut
            try:
                resp = await self._miss(req, rid, pool, model, m, key, stale, no_store)
            except BaseException as exc:
                fut.set_exception(exc)
                fut.exception()  # mark retrieved: followers re-raise it themselves
                raise
            finally:
                self.cache.inflight.pop(key, None)
            if not fut.done():
                fut.set_result(EdgeResponse(resp.status, dict(resp.headers), resp.body))
            return resp
        return await self._miss(req, rid, pool, model, m, key, None, no_store, "BYPASS")

    async def _miss(
        self,
        req: EdgeRequest,
        rid: str,
        pool: str,
        model: str,
        m: Match,
        key: CacheKey,
        stale: CachedResponse | None,
        no_store: bool,
        state: str = "MISS",
    ) -> EdgeResponse:
        headers = self._forward_headers(req, rid)
        try:
            up, _ = await self.pool.forward(
                pool, "POST", self._path_qs(req), headers, req.body, retryable=True
            )
        except (ForwardFailure, NoOriginAvailable) as exc:
            if stale is not None:
                self.stats.inc("outpost_edge_cache_total", "STALE")
                log.warning("request_id=%s serving stale: origins failed", rid)
                return self._from_entry(req, stale, "STALE")
            self.stats.inc("outpost_edge_cache_total", "ERROR")
            return self._upstream_problem(exc, rid, pool)
        if up.status >= 500 and stale is not None:
            self.stats.inc("outpost_edge_cache_total", "STALE")
            return self._from_entry(req, stale, "STALE")
        served_name = up.headers.get("x-model-name", "")
        served_version = up.headers.get("x-model-version", "")
        if up.status == 200 and served_version and not m.version:
            self.pool.versions.learn(pool, model, served_version)
            if served_name and served_name != model:
                self.pool.versions.learn(pool, served_name, served_version)
        if up.status == 200 and not no_store:
            entry = self.cache.entry_for(up.status, up.headers, up.body)
            if entry is not None:
                if not m.version and served_version:
                    key = with_version(key, served_version)
                self.cache.put(key, entry)
                if self.platform.cache_tier2 is not None:
                    self.platform.spawn(self.cache.put_tier2(key, entry))
        self.stats.inc("outpost_edge_cache_total", state)
        resp = self._from_upstream(up)
        resp.headers["x-cache"] = state
        return resp

    # -- response finishing -----------------------------------------------------------------------
    def _cors_origin(self, req: EdgeRequest) -> str | None:
        origin = req.headers.get("origin")
        if not origin or not (self._cors_any or origin in self._cors):
            return None
        return origin

    def _preflight(self, req: EdgeRequest) -> EdgeResponse:
        headers: dict[str, str] = {"cache-control": "no-store"}
        origin = self._cors_origin(req)
        if origin:
            headers.update(
                {
                    "access-control-allow-methods": "GET, POST, OPTIONS",
                    "access-control-allow-headers": req.headers.get(
                        "access-control-request-headers", "authorization, content-type"
                    ),
                    "access-control-max-age": "600",
                }
            )
        return EdgeResponse(204, headers, b"")

    def _finish(
        self, req: EdgeRequest, resp: EdgeResponse, rid: str, extra: dict[str, str]
    ) -> None:
        h = resp.headers
        h["x-request-id"] = rid
        if extra:
            h.update(extra)
        origin = self._cors_origin(req)
        if origin:
            h["access-control-allow-origin"] = "*" if self._cors_any else origin
            h["access-control-expose-headers"] = _EXPOSED
            if not self._cors_any:
                h["vary"] = f"{h['vary']}, origin" if "vary" in h else "origin"
        if req.method == "GET" and resp.status == 200:
            etag = h.get("etag") or f'W/"{hashlib.sha256(resp.body).hexdigest()[:24]}"'
            h["etag"] = etag
            inm = req.headers.get("if-none-match")
            if inm and (inm.strip() == "*" or etag in [t.strip() for t in inm.split(",")]):
                resp.status = 304
                resp.body = b""
                h.pop("content-type", None)
                return
        if (
            "content-encoding" not in h
            and len(resp.body) >= self.config.gzip_min_bytes
            and "gzip" in req.headers.get("accept-encoding", "")
            and h.get("content-type", "").startswith(_COMPRESSIBLE)
        ):
            resp.body = self.platform.gzip(resp.body, self.config.gzip_level)
            h["content-encoding"] = "gzip"
            h["vary"] = f"{h['vary']}, accept-encoding" if "vary" in h else "accept-encoding"
