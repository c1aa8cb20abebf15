"""The edge proves itself to origins (edge/upstream/proof.py): every forwarded request carries
an `X-Outpost-Caller` proof that the origin's own check (origin/caller.py) accepts, naming the
subject the edge verified; a client cannot send its own; an origin refusing the proof is the
edge's fault (502), never shown as the client's 401; the key never shows in errors, `repr` or
`outpost config show`. In-process (tests/edge/harness.py)."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import asdict
from typing import Any

import pytest

from edge.config import ConfigError, load_config
from edge.core.request import UpstreamResponse
from edge.upstream.proof import ProofSigner, wire_subject
from origin.caller import CallerRefused, CallerVerifier, new_key
from tests.edge.conftest import Issuer, run_in_pyodide
from tests.edge.harness import Call, EdgeUnderTest, FakeOrigin, json_answer

KID, KEY = new_key()
SETTING = f"{KID}:{KEY}"
RECORD = {"kid": KID, "key": KEY}


@pytest.fixture
def origin_check() -> CallerVerifier:
    return CallerVerifier(lambda: RECORD, required=True, max_age=120)


def proven(check: CallerVerifier, call: Call) -> str:
    """The subject `call` (as the origin received it) is proven for; raises CallerRefused."""
    return check.verify(
        call.headers.get("x-outpost-caller", "").encode(),
        call.method,
        call.path.encode(),
        call.headers["x-request-id"].encode(),
    )


async def test_forwarded_requests_prove_the_edge_and_name_the_verified_subject(
    make_edge: Any, mem_issuer: Issuer, origin_check: CallerVerifier
) -> None:
    edge: EdgeUnderTest = make_edge({"caller_key": SETTING})
    token = mem_issuer.token("ed-1", sub="proof-user")
    assert (await edge.embed(token, "hello")).status_code == 200
    listing = await edge.client.get("/v1/models", headers={"authorization": f"Bearer {token}"})
    assert listing.status_code == 200
    token_call = await edge.client.post("/oauth/token", data={"grant_type": "x"})  # no token
    assert token_call.status_code == 200
    await edge.platform.settle()
    forwarded = [c for c in edge.origin.calls if "x-request-id" in c.headers]
    own = [c for c in forwarded if c.headers["x-request-id"].startswith("edge-health-")]
    subjects = {c.path: proven(origin_check, c) for c in forwarded if c not in own}
    assert subjects == {
        "/v1/embeddings": "sub:proof-user",
        "/v1/models": "sub:proof-user",
        "/oauth/token": "ip:203.0.113.7",  # the harness's client: no token is asked there
    }
    # The pool's own model listing is proven too (health checks need no proof).
    assert own and all(proven(origin_check, c) == "edge:health" for c in own)


async def test_a_proof_does_not_prove_another_request(
    make_edge: Any, mem_issuer: Issuer, origin_check: CallerVerifier
) -> None:
    edge: EdgeUnderTest = make_edge({"caller_key": SETTING})
    assert (await edge.embed(mem_issuer.token("ed-1"), "one")).status_code == 200
    call = edge.origin.inference_calls()[-1]
    for changed in (
        Call("GET", call.url, call.path, call.headers, call.body),
        Call(call.method, call.url, "/v1/classifications", call.headers, call.body),
        Call(call.method, call.url, call.path, {**call.headers, "x-request-id": "x"}, call.body),
    ):
        with pytest.raises(CallerRefused):
            proven(origin_check, changed)


async def test_a_client_cannot_send_its_own_proof(
    make_edge: Any, mem_issuer: Issuer, origin_check: CallerVerifier
) -> None:
    token = mem_issuer.token("ed-1", sub="honest")
    stolen = ProofSigner(KID, base64.b64decode(KEY), time.time).header(
        "POST", "/v1/embeddings", "rid-1", "sub:admin"
    )
    headers = {"x-outpost-caller": stolen, "x-request-id": "rid-1"}
    signing: EdgeUnderTest = make_edge({"caller_key": SETTING})
    assert (await signing.embed(token, "mine", headers=headers)).status_code == 200
    assert proven(origin_check, signing.origin.inference_calls()[-1]) == "sub:honest"
    unsigned: EdgeUnderTest = make_edge()  # no key: nothing is sent
    assert (await unsigned.embed(token, "mine", headers=headers)).status_code == 200
    assert "x-outpost-caller" not in unsigned.origin.inference_calls()[-1].headers


class RefusingOrigin(FakeOrigin):
    """An origin with another caller key: it refuses every proof the edge sends."""

    async def __call__(self, call: Call) -> UpstreamResponse:
        if call.path == "/v2/health/ready":
            return await super().__call__(call)
        body = {"type": "urn:outpost:problem:caller-unproven", "status": 401}
        return json_answer(
            401,
            body,
            {
                "www-authenticate": 'OutpostCaller realm="outpost-origin"',
                "x-request-id": call.headers.get("x-request-id", ""),
            },
        )


async def test_an_origin_refusing_the_edge_is_a_502_not_the_clients_401(
    make_edge: Any, mem_issuer: Issuer
) -> None:
    edge: EdgeUnderTest = make_edge(
        {"caller_key": SETTING}, origins=[RefusingOrigin("http://origin-1.test")]
    )
    resp = await edge.embed(mem_issuer.token("ed-1"), "refused")
    assert resp.status_code == 502
    assert resp.headers["content-type"] == "application/problem+json"
    assert "www-authenticate" not in resp.headers
    assert resp.json()["type"] == "urn:outpost:problem:bad-gateway"


@pytest.mark.parametrize(
    "value",
    [
        "no-separator",
        f"{KID}:{KEY[:-8]}",  # too short
        f"{KID}:{base64.b64encode(b'k' * 33).decode()}",  # 33 bytes
        f"bad kid:{KEY}",
        f"{KID}:{KEY[:-2]}!=",
    ],
)
def test_a_malformed_key_is_refused_without_echoing_it(value: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config({"OUTPOST_EDGE_CALLER_KEY": value})
    assert "caller_key" in str(err.value)
    assert value not in str(err.value) and KEY[:12] not in str(err.value)


def test_the_key_stays_out_of_repr_and_config_show() -> None:
    from outpost.effective_config import effective_config, redact

    config = load_config({"OUTPOST_EDGE_CALLER_KEY": SETTING})
    assert config.caller_key == SETTING
    assert KEY not in repr(config)
    assert redact(asdict(config))["caller_key"] == "***"
    import os

    saved = os.environ.get("OUTPOST_EDGE_CALLER_KEY")
    os.environ["OUTPOST_EDGE_CALLER_KEY"] = SETTING
    try:
        shown = json.dumps(effective_config("edge"))
    finally:
        if saved is None:
            del os.environ["OUTPOST_EDGE_CALLER_KEY"]
        else:
            os.environ["OUTPOST_EDGE_CALLER_KEY"] = saved
    assert KEY not in shown and '"caller_key": "***"' in shown
    # A running stack records its settings redacted: shown as such, not as a bad setting.
    running = effective_config(
        "edge", {"config": {"edge": {"OUTPOST_EDGE_CALLER_KEY": "***"}}, "origins": []}
    )
    assert running["edge"]["caller_key"] == "***" and "error" not in running["edge"]


def test_odd_subjects_travel_as_their_hash() -> None:
    assert wire_subject("sub:abc") == "sub:abc"
    assert wire_subject("sub:ünïcödé") == "sub:ünïcödé"
    for odd in ("sub:" + "x" * 300, "sub:line\nbreak", "sub:\ud800", ""):
        sent = wire_subject(odd)
        assert sent.startswith("hash:") and len(sent) == 69
    check = CallerVerifier(lambda: RECORD, required=True, max_age=120)
    signer = ProofSigner(KID, base64.b64decode(KEY), time.time)
    value = signer.header("GET", "/x", "r", "sub:line\nbreak").encode()
    assert check.verify(value, "GET", b"/x", b"r").startswith("hash:")


def test_the_worker_signs_in_pyodide_what_the_origin_accepts() -> None:
    """The signing module imports and runs inside real Pyodide (npm `pyodide`, as the Worker
    tests use), and its proofs pass the origin's check."""
    code = (
        "from edge.upstream.proof import ProofSigner\n"
        f"signer = ProofSigner.from_setting({SETTING!r}, lambda: {time.time()})\n"
        "print(signer.header('POST', '/v1/embeddings', 'rid-9', 'sub:worker-user'))\n"
    )
    files = ("edge/__init__.py", "edge/upstream/__init__.py", "edge/upstream/proof.py")
    printed = run_in_pyodide(code, *files)
    header = printed.strip().splitlines()[-1]
    check = CallerVerifier(lambda: RECORD, required=True, max_age=120)
    assert check.verify(header.encode(), "POST", b"/v1/embeddings", b"rid-9") == "sub:worker-user"
