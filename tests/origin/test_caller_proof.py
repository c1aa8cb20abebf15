"""The origin answers only proven callers (origin/caller.py), in process: a request without a
valid `X-Outpost-Caller` proof gets 401 problem+json; a forged, stale, future, wrong-key or
tampered one (method, path, query, request id, subject) too; both keys of a rotation are
accepted; probes and public keys stay open; metrics and detailed health move to the internal
listener; the proven subject reaches handlers as `request.state.caller_subject`.

The key record is a dict here (as the secrets snapshot holds it); the real path through Vault,
the edge and gRPC is tests/resilience/attacks/test_caller_proof.py."""

from __future__ import annotations

import base64
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Request

from origin.app import create_app
from origin.caller import CallerVerifier, new_key, parse_record, sign
from origin.settings import OriginSettings

ADMIN_PORT = 9911
RID = "req-1"


def _key(record: dict[str, str], which: str = "") -> tuple[str, bytes]:
    return record[f"{which}kid"], base64.b64decode(record[f"{which}key"])


def proof(
    record: dict[str, str],
    method: str = "GET",
    target: str = "/whoami",
    *,
    rid: str = RID,
    subject: str = "sub:user-1",
    t: float | None = None,
    which: str = "",
) -> dict[str, str]:
    kid, key = _key(record, which)
    when = int(time.time() if t is None else t)
    return {
        "x-outpost-caller": sign(key, kid, when, method, target, rid, subject),
        "x-request-id": rid,
    }


class Keys:
    """The caller record as the secrets snapshot would hand it over (swappable)."""

    def __init__(self) -> None:
        kid, key = new_key()
        self.record: dict[str, str] | None = {"kid": kid, "key": key}

    def __call__(self) -> dict[str, str] | None:
        return self.record


def echo_router() -> APIRouter:
    router = APIRouter()

    @router.api_route("/whoami", methods=["GET", "POST"])
    async def whoami(request: Request) -> dict[str, Any]:
        return {"subject": request.state.caller_subject}

    return router


async def _served(tmp_path: Path, tiny_src: Path, keys: Keys, required: bool) -> Any:
    shutil.copytree(tiny_src / "iris", tmp_path / "iris")
    settings = OriginSettings(
        models_dir=tmp_path,
        watch=False,
        access_log=False,
        caller_proof_required=required,
        admin_port=ADMIN_PORT,
    )
    verifier = CallerVerifier(keys, required=required, max_age=120)
    return create_app(settings, caller=verifier, extra_routers=[echo_router()])


@pytest.fixture
def keys() -> Keys:
    return Keys()


@pytest.fixture
async def client(tmp_path: Path, tiny_src: Path, keys: Keys) -> AsyncIterator[httpx.AsyncClient]:
    app = await _served(tmp_path, tiny_src, keys, required=True)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://origin") as c:
            c.app = app  # type: ignore[attr-defined]
            yield c


def assert_refused(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 401, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.headers["www-authenticate"].startswith("OutpostCaller")
    body = resp.json()
    assert body["type"] == "urn:outpost:problem:caller-unproven"
    assert body["status"] == 401 and body["request_id"]
    return body


def refusals(client: httpx.AsyncClient, reason: str) -> float:
    metrics = client.app.state.metrics  # type: ignore[attr-defined]
    return metrics.caller_refused.labels(reason)._value.get()


async def test_a_request_without_a_proof_is_refused(client: httpx.AsyncClient) -> None:
    body = assert_refused(await client.get("/v1/models"))
    assert "proven callers" in body["detail"]
    assert_refused(await client.post("/v2/models/iris/infer", json={"inputs": []}))
    assert refusals(client, "missing") == 2


async def test_a_valid_proof_is_served_and_names_the_subject(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    resp = await client.get("/whoami", headers=proof(keys.record))
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"subject": "sub:user-1"}
    ip = await client.get("/whoami", headers=proof(keys.record, subject="ip:2001:db8::7"))
    assert ip.json() == {"subject": "ip:2001:db8::7"}
    listing = await client.get("/v1/models", headers=proof(keys.record, target="/v1/models"))
    assert listing.status_code == 200


def _tampered(record: dict[str, str], case: str) -> tuple[str, str, dict[str, str]]:
    """(method, path, headers) of a request whose proof does not prove it."""
    now = time.time()
    if case == "method":
        return "POST", "/whoami", proof(record, "GET")
    if case == "path":
        return "GET", "/whoami", proof(record, target="/v1/models")
    if case == "query":
        return "GET", "/whoami?as=admin", proof(record)
    if case == "request-id":
        return "GET", "/whoami", {**proof(record), "x-request-id": "another"}
    if case == "subject":  # someone else's subject under this proof's signature
        other = proof(record, subject="sub:admin")["x-outpost-caller"].split("; ")[3]
        mine = proof(record)["x-outpost-caller"].split("; ")
        mine[3] = other
        return "GET", "/whoami", {"x-outpost-caller": "; ".join(mine), "x-request-id": RID}
    if case == "stale":
        return "GET", "/whoami", proof(record, t=now - 121)
    if case == "future":
        return "GET", "/whoami", proof(record, t=now + 60)
    if case == "wrong-key":  # the right key id, another key
        forged = dict(record, key=new_key()[1])
        return "GET", "/whoami", proof(forged)
    if case == "unknown-kid":
        forged = {"kid": "not-in-vault", "key": record["key"]}
        return "GET", "/whoami", proof(forged)
    good = proof(record)
    value = good["x-outpost-caller"]
    bad = {
        "no-version": value.removeprefix("v1; "),
        "v2": value.replace("v1;", "v2;", 1),
        "spaces": value.replace("; ", ";"),
        "padded-sig": value + "=",
        "long": value + "x" * 700,
        "signed-decimal-time": value.replace("; t=", "; t=+", 1),
        "non-ascii-digit": value.replace("; t=1", "; t=\u0661", 1),
        "empty": "",
    }[case]
    return "GET", "/whoami", {"x-outpost-caller": bad, "x-request-id": RID}


TAMPERED = ["method", "path", "query", "request-id", "subject", "wrong-key"]
WINDOW = ["stale", "future"]
MALFORMED = [
    "no-version",
    "v2",
    "spaces",
    "padded-sig",
    "long",
    "signed-decimal-time",
    "non-ascii-digit",
    "empty",
]


@pytest.mark.parametrize("case", TAMPERED + WINDOW + ["unknown-kid", *MALFORMED])
async def test_a_proof_that_does_not_prove_this_request_is_refused(
    client: httpx.AsyncClient, keys: Keys, case: str
) -> None:
    method, path, headers = _tampered(keys.record, case)
    raw = [(k.encode(), v.encode("utf-8")) for k, v in headers.items()]
    assert_refused(await client.request(method, path, headers=raw))
    reason = (
        "forged"
        if case in TAMPERED
        else "expired"
        if case in WINDOW
        else "unknown-key"
        if case == "unknown-kid"
        else "missing"
        if case == "empty"
        else "malformed"
    )
    assert refusals(client, reason) == 1


async def test_two_proof_headers_are_refused_even_when_one_is_valid(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    good = proof(keys.record)
    headers = [
        (b"x-outpost-caller", good["x-outpost-caller"].encode()),
        (b"x-outpost-caller", good["x-outpost-caller"].encode()),
        (b"x-request-id", RID.encode()),
    ]
    assert_refused(await client.get("/whoami", headers=headers))


async def test_both_keys_of_a_rotation_are_accepted_then_only_the_new_one(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    old = dict(keys.record)
    kid, key = new_key()
    keys.record = {"kid": kid, "key": key, "previous_kid": old["kid"], "previous_key": old["key"]}
    assert (await client.get("/whoami", headers=proof(keys.record))).status_code == 200
    assert (await client.get("/whoami", headers=proof(old))).status_code == 200
    keys.record = {"kid": kid, "key": key}  # the previous key retired
    assert (await client.get("/whoami", headers=proof(keys.record))).status_code == 200
    assert_refused(await client.get("/whoami", headers=proof(old)))


async def test_probes_and_public_keys_need_no_proof(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v2/health/live")).status_code == 200
    assert (await client.get("/v2/health/ready")).status_code == 200
    # Not served by this app (no token issuer), but not refused either: 404, not 401.
    assert (await client.get("/.well-known/jwks.json")).status_code == 404
    # Only GET and HEAD pass unproven, and only on the exact paths.
    assert_refused(await client.post("/v2/health/live"))
    assert_refused(await client.get("/v2/health/live/"))


async def test_metrics_and_detailed_health_are_on_the_internal_listener(
    client: httpx.AsyncClient,
) -> None:
    assert_refused(await client.get("/metrics"))
    assert_refused(await client.get("/healthz"))
    internal = f"http://origin:{ADMIN_PORT}"
    metrics = await client.get(internal + "/metrics")
    assert metrics.status_code == 200 and "outpost_origin_caller_refused_total" in metrics.text
    assert (await client.get(internal + "/healthz")).json()["ready"] is True
    assert (await client.get(internal + "/v1/models")).status_code == 200
    # Nothing else: no inference, no writes, on the unproven listener.
    for method, path in (
        ("POST", "/v2/models/iris/infer"),
        ("GET", "/whoami"),
        ("POST", "/metrics"),
    ):
        resp = await client.request(method, internal + path, json={})
        assert resp.status_code == 404, (method, path)
        assert resp.headers["content-type"] == "application/problem+json"


async def test_no_key_in_vault_makes_the_origin_unready_with_the_reason(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    keys.record = None
    assert (await client.get("/v2/health/ready")).status_code == 503
    health = (await client.get(f"http://origin:{ADMIN_PORT}/healthz")).json()
    assert any("caller proof required" in r for r in health["degraded"])
    keys.record = {"kid": "k1", "key": "not base64 of 32 bytes"}
    health = (await client.get(f"http://origin:{ADMIN_PORT}/healthz")).json()
    assert any("malformed" in r for r in health["degraded"])
    assert "not base64" not in str(health)


async def test_without_the_requirement_a_valid_proof_still_names_the_subject(
    tmp_path: Path, tiny_src: Path, keys: Keys
) -> None:
    app = await _served(tmp_path, tiny_src, keys, required=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://origin") as c:
            assert (await c.get("/whoami")).json() == {"subject": None}
            assert (await c.get("/whoami", headers=proof(keys.record))).json() == {
                "subject": "sub:user-1"
            }
            forged = proof(keys.record, t=time.time() - 1000)
            assert (await c.get("/whoami", headers=forged)).json() == {"subject": None}
            assert (await c.get("/metrics")).status_code == 200


def test_a_malformed_key_record_is_refused_without_showing_the_key() -> None:
    kid, key = new_key()
    assert set(parse_record({"kid": kid, "key": key})) == {kid}
    for record in (
        {"kid": kid, "key": key[:-4] + "===="},
        {"kid": "bad kid", "key": key},
        {"kid": kid, "key": base64.b64encode(b"x" * 31).decode()},
        {"kid": kid, "key": key, "previous_kid": "k0"},
    ):
        with pytest.raises(ValueError) as err:
            parse_record(record)
        assert key not in str(err.value) and key[:10] not in str(err.value)


def test_an_origin_that_requires_proofs_needs_vault(tmp_path: Path) -> None:
    settings = OriginSettings(models_dir=tmp_path, caller_proof_required=True)
    with pytest.raises(ValueError, match="needs Vault"):
        create_app(settings)
