"""Quota buckets in Durable Objects (Cloudflare Workers): held across every isolate and location.

`QuotaObject` is the Durable Object: one per shard, its buckets in its own SQLite storage
(`ctx.storage.sql`). A Durable Object handles one request at a time, so a charge to several
buckets is atomic within it. `DurableStore` is the edge's side: a request's subject buckets go
to the subject's shard (a hash of the subject over `quota_shards` objects), its app buckets to
the app's shard; when the second refuses, what the first took is given back, so a request is
charged everywhere or nowhere (bar a crash between the two calls). A request's DPoP proof id
(`Once`) goes with the last shard's charge and is kept there, when the whole request is charged,
in a `proofs` table whose expired rows are dropped as new ones come, so a proof one isolate
accepted is refused by every other.

Bound in wrangler.toml as `QUOTAS` (class `QuotaObject`, a `new_sqlite_classes` migration).
The rule is `edge.limits.quota.settle`, the same as in memory and in Redis.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from typing import Any

from edge.limits.quota import Bucket, Level, Once, Outcome, refill, settle

SCHEMA = "CREATE TABLE IF NOT EXISTS buckets (key TEXT PRIMARY KEY, tokens REAL, ts REAL)"
PROOFS = (
    "CREATE TABLE IF NOT EXISTS proofs (key TEXT PRIMARY KEY, expires REAL)",
    "CREATE INDEX IF NOT EXISTS proofs_expires ON proofs (expires)",
)
_URL = "https://quota.outpost.internal/"


def take_in(sql: Any, buckets: Sequence[Bucket], now: float, give_back: bool = False) -> Outcome:
    """Charge `buckets` (or, with `give_back`, return their cost) in one object's storage."""
    tokens = []
    for b in buckets:
        rows = list(sql.exec("SELECT tokens, ts FROM buckets WHERE key = ?", b.key))
        if rows:
            tokens.append(refill(float(rows[0].tokens), float(rows[0].ts), now, b))
        else:
            tokens.append(b.burst)
    if give_back:
        for b, t in zip(buckets, tokens, strict=True):
            _store(sql, b.key, min(b.burst, t + b.cost), now)
        return settle(tokens, buckets)
    outcome = settle(tokens, buckets)
    for b, t in zip(buckets, tokens, strict=True):
        _store(sql, b.key, t - b.cost if outcome.allowed else t, now)
    return outcome


def used(sql: Any, once: Once, now: float) -> bool:
    """Whether `once` (a DPoP proof's id) is recorded and live: a replay."""
    rows = list(sql.exec("SELECT expires FROM proofs WHERE key = ?", once.key))
    return bool(rows) and float(rows[0].expires) > now


def record(sql: Any, once: Once, now: float) -> None:
    """Keep `once` for its lifetime, dropping the ids no replica accepts any more. The object
    runs one request at a time, so `used` and this cannot interleave with another request."""
    sql.exec("DELETE FROM proofs WHERE expires <= ?", now)
    expires = now + once.seconds
    sql.exec("INSERT OR REPLACE INTO proofs (key, expires) VALUES (?, ?)", once.key, expires)


def _store(sql: Any, key: str, tokens: float, now: float) -> None:
    sql.exec(
        "INSERT INTO buckets (key, tokens, ts) VALUES (?, ?, ?) "
        "ON CONFLICT(key) DO UPDATE SET tokens = excluded.tokens, ts = excluded.ts",
        key,
        tokens,
        now,
    )


def encode(buckets: Sequence[Bucket], give_back: bool = False, once: Once | None = None) -> str:
    doc: dict[str, Any] = {
        "give_back": give_back,
        "buckets": [[b.name, b.key, b.rate, b.burst, b.cost] for b in buckets],
    }
    if once is not None:
        doc["once"] = [once.key, once.seconds]
    return json.dumps(doc)


def decode(text: str) -> tuple[list[Bucket], bool, Once | None]:
    doc = json.loads(text)
    buckets = [
        Bucket(str(n), str(k), float(r), float(s), float(c)) for n, k, r, s, c in doc["buckets"]
    ]
    once = doc.get("once")
    return buckets, bool(doc.get("give_back")), Once(str(once[0]), float(once[1])) if once else None


def outcome_json(outcome: Outcome) -> str:
    return json.dumps(
        {
            "allowed": outcome.allowed,
            "levels": [[lv.remaining, lv.reset] for lv in outcome.levels],
            "retry_after": outcome.retry_after,
            "reused": outcome.reused,
        }
    )


def outcome_from(text: str) -> Outcome:
    doc = json.loads(text)
    levels = tuple(Level(float(r), float(t)) for r, t in doc["levels"])
    return Outcome(
        bool(doc["allowed"]), levels, int(doc["retry_after"]), bool(doc.get("reused", False))
    )


def shard_of(key: str, shards: int) -> str:
    """The object name for a bucket key's owner (subject or app)."""
    owner = key.split("|")[2]  # q|<class>|<owner>|<kind>
    digest = hashlib.sha256(owner.encode()).digest()
    return f"quota-{int.from_bytes(digest[:4], 'big') % shards}"


class DurableStore:
    """The Worker's side: each shard's buckets charged in its Durable Object."""

    def __init__(self, env: Any, shards: int) -> None:
        self._env = env
        self._shards = shards

    async def _call(self, shard: str, body: str) -> Outcome:
        from edge.runtime.workers import js_object

        namespace = self._env.QUOTAS
        stub = namespace.get(namespace.idFromName(shard))
        resp = await stub.fetch(_URL, js_object({"method": "POST", "body": body}))
        if int(resp.status) != 200:
            raise RuntimeError(f"quota object answered {resp.status}")
        return outcome_from(str(await resp.text()))

    async def take(self, buckets: Sequence[Bucket], once: Once | None = None) -> Outcome:
        """Charge every shard's part or none. `once` goes to the last shard called (the app's
        when the request has app buckets, else the subject's), so it is kept only when the
        whole request is charged; a replay found there gives back what the others took."""
        groups: dict[str, list[int]] = {}
        for i, b in enumerate(buckets):
            groups.setdefault(shard_of(b.key, self._shards), []).append(i)
        levels: list[Any] = [None] * len(buckets)
        charged: list[tuple[str, list[Bucket]]] = []
        for n, (shard, idx) in enumerate(groups.items()):
            part = [buckets[i] for i in idx]
            last = n == len(groups) - 1
            outcome = await self._call(shard, encode(part, once=once if last else None))
            if outcome.reused or not outcome.allowed:
                for done_shard, done in charged:  # give back what the other shards took
                    await self._call(done_shard, encode(done, give_back=True))
            if outcome.reused:
                return outcome
            for i, level in zip(idx, outcome.levels, strict=True):
                levels[i] = level
            if not outcome.allowed:
                return Outcome(False, tuple(levels_or_full(levels, buckets)), outcome.retry_after)
            charged.append((shard, part))
        return Outcome(True, tuple(levels))


def levels_or_full(levels: list[Any], buckets: Sequence[Bucket]) -> list[Any]:
    return [
        lv if lv is not None else Level(b.burst, 0.0) for lv, b in zip(levels, buckets, strict=True)
    ]


def quota_object_class() -> type:
    """The Durable Object class (built on first use: `workers` imports only inside Workers)."""
    from workers import DurableObject, Response

    class QuotaObject(DurableObject):
        def __init__(self, ctx: Any, env: Any) -> None:
            self.ctx = ctx
            self.env = env
            self.sql = ctx.storage.sql
            self.sql.exec(SCHEMA)
            for statement in PROOFS:
                self.sql.exec(statement)

        async def fetch(self, request: Any) -> Any:
            try:
                buckets, give_back, once = decode(str(await request.text()))
            except (ValueError, KeyError, TypeError, IndexError):
                return Response("bad quota request", status=400)
            now = time.time()
            if once is not None and used(self.sql, once, now):
                outcome = Outcome(False, (), reused=True)
            else:
                outcome = take_in(self.sql, buckets, now, give_back)
                if once is not None and outcome.allowed:
                    record(self.sql, once, now)
            return Response(outcome_json(outcome), headers={"content-type": "application/json"})

    return QuotaObject
