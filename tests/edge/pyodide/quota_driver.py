"""Runs inside real Pyodide with the real `workers` SDK (tests/edge/pyodide/run_worker.mjs,
DRIVER mode): the quota Durable Object class the Worker exports, reached through DurableStore.

FAKES, named as such: `FakeSqlStorage` stands in for a Durable Object's SQLite storage
(`ctx.storage.sql`), and `FakeNamespace` for the `QUOTAS` binding and its stubs (Cloudflare's
network cannot run here). The object class, its fetch handler, the bucket rule, the stub calls
and the request/response objects crossing them are the real code."""

import json


class _Row:
    def __init__(self, tokens, ts):
        self.tokens = tokens
        self.ts = ts


class _Proof:
    def __init__(self, expires):
        self.expires = expires


class FakeSqlStorage:
    """FAKE of ctx.storage.sql: the statements the quota object runs, on two dicts."""

    def __init__(self):
        self.rows = {}
        self.proofs = {}
        self.statements = 0

    def exec(self, query, *args):
        self.statements += 1
        q = " ".join(query.split())
        if q.startswith(("CREATE TABLE", "CREATE INDEX")):
            return []
        if q.startswith("SELECT tokens, ts FROM buckets WHERE key = ?"):
            found = self.rows.get(args[0])
            return [_Row(*found)] if found else []
        if q.startswith("INSERT INTO buckets"):
            self.rows[args[0]] = (args[1], args[2])
            return []
        if q == "SELECT expires FROM proofs WHERE key = ?":
            found = self.proofs.get(args[0])
            return [_Proof(found)] if found is not None else []
        if q == "DELETE FROM proofs WHERE expires <= ?":
            self.proofs = {k: v for k, v in self.proofs.items() if v > args[0]}
            return []
        if q == "INSERT OR REPLACE INTO proofs (key, expires) VALUES (?, ?)":
            self.proofs[args[0]] = args[1]
            return []
        raise AssertionError(f"unexpected statement: {q}")


class _Storage:
    def __init__(self):
        self.sql = FakeSqlStorage()


class _Ctx:
    def __init__(self):
        self.storage = _Storage()


class _Id:
    def __init__(self, name):
        self.name = name


class _Stub:
    def __init__(self, obj):
        self._obj = obj

    async def fetch(self, url, init):
        import js

        response = await self._obj.fetch(js.Request.new(url, init))
        return response.js_object  # what a real stub's fetch resolves to: a JS Response


class FakeNamespace:
    """FAKE of a Durable Object namespace binding: one object per name, made on first use."""

    def __init__(self, cls):
        self._cls = cls
        self.objects = {}

    def idFromName(self, name):
        return _Id(name)

    def get(self, ident):
        if ident.name not in self.objects:
            self.objects[ident.name] = self._cls(_Ctx(), object())
        return _Stub(self.objects[ident.name])


class _Env:
    def __init__(self, namespace):
        self.QUOTAS = namespace


async def run():
    import entry  # the Worker's top-level module: it exports QuotaObject

    from edge.limits.durable import DurableStore
    from edge.limits.quota import Bucket, Once

    namespace = FakeNamespace(entry.QuotaObject)
    env = _Env(namespace)
    isolate_a, isolate_b = DurableStore(env, 8), DurableStore(env, 8)

    def charge(subject, app=None, cost=1.0):
        out = [Bucket("inference", f"q|inference|{subject}|n", 0.001, 3, 1)]
        out.append(Bucket("inference-work", f"q|inference|{subject}|w", 0.001, 100, cost))
        if app:
            out.append(Bucket("app-inference", f"q|inference|app:{app}|n", 0.001, 4, 1))
        return out

    results = {}
    # Two isolates, one subject: the limit is the subject's, not each isolate's.
    results["one_subject"] = [
        (await (isolate_a if i % 2 else isolate_b).take(charge("sub:u1"))).allowed for i in range(6)
    ]
    # The work bucket refuses: nothing is taken from the request bucket.
    results["heavy"] = (await isolate_a.take(charge("sub:u2", cost=150))).allowed
    after = await isolate_b.take(charge("sub:u2", cost=1))
    results["after_heavy"] = [after.allowed, [round(lv.remaining) for lv in after.levels]]
    # App buckets live in the app's shard, shared by its subjects across isolates; a refusal
    # there gives back what the subject's shard took.
    results["app"] = [
        (await (isolate_a if i % 2 else isolate_b).take(charge(f"sub:d{i}", app="shop"))).allowed
        for i in range(6)
    ]
    again = await isolate_a.take(charge("sub:d5", cost=1))
    results["given_back"] = round(again.levels[0].remaining)
    # A DPoP proof's id rides with the charge: the other isolate refuses its reuse, uncharged,
    # and an id past its lifetime is forgotten (the object keeps only live ones).
    proof = Once("dpop|jkt-1|jti-1", 60)
    first = await isolate_a.take(charge("sub:p1"), proof)
    replay = await isolate_b.take(charge("sub:p1"), proof)
    fresh = await isolate_b.take(charge("sub:p1"), Once("dpop|jkt-1|jti-2", 60))
    results["proof"] = [first.allowed, replay.reused, replay.allowed, fresh.allowed]
    results["proof_remaining"] = round(fresh.levels[0].remaining)  # 3 - 2: the replay is free
    short = Once("dpop|jkt-2|jti-1", -1)  # already past its lifetime when recorded
    await isolate_a.take(charge("sub:p2"), short)
    again = await isolate_b.take(charge("sub:p2"), short)  # expired: not a replay any more
    results["expired_reused"] = again.reused
    await isolate_b.take(charge("sub:p2"), Once("dpop|jkt-2|jti-2", 60))  # the same shard
    results["expired_kept"] = sum(short.key in o.sql.proofs for o in namespace.objects.values())
    results["live_kept"] = sum(
        "dpop|jkt-2|jti-2" in o.sql.proofs for o in namespace.objects.values()
    )
    # A request its quota refuses stores no proof id (more work than the bucket holds).
    refused = Once("dpop|jkt-1|jti-4", 60)
    heavy = await isolate_a.take(charge("sub:p1", cost=150), refused)
    results["refused_kept"] = [
        heavy.allowed,
        sum(refused.key in o.sql.proofs for o in namespace.objects.values()),
    ]
    # With app buckets (sub:p5 and app:mall live in different shards): a replay gives back the
    # subject's charge, and a request the app's bucket refuses stores no proof id either.
    with_app = Once("dpop|jkt-5|jti-1", 60)
    await isolate_a.take(charge("sub:p5", app="mall"), with_app)
    replay = await isolate_b.take(charge("sub:p5", app="mall"), with_app)
    after = await isolate_b.take(charge("sub:p5"))
    results["app_replay"] = [replay.reused, round(after.levels[0].remaining)]  # 3 - 2
    over = Once("dpop|jkt-6|jti-1", 60)
    by_app = await isolate_a.take(charge("sub:p6", app="shop"), over)  # shop is spent (above)
    results["app_refused_kept"] = [
        by_app.allowed,
        sum(over.key in o.sql.proofs for o in namespace.objects.values()),
    ]
    results["objects"] = len(namespace.objects)
    results["statements"] = sum(o.sql.statements for o in namespace.objects.values())
    return json.dumps(results)
