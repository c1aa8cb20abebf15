"""Hypothesis against the edge with what UTF-8 and ASCII do not allow: inference bodies with raw
bytes (inside JSON strings, as keys, instead of JSON), header values with obs-text bytes, request
targets with bytes outside ASCII and broken escapes. Inference bodies go to the origin directly
(with a caller proof) and through the edge: both give the same status, never a 5xx; any raw
request to the edge gets an answer below 500, a problem+json one when it is refused."""

from __future__ import annotations

import json
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.resilience.conftest import CLS, EMB, IRIS, ProvenStack, proof_headers
from tests.resilience.fuzz.raw import RawAnswer, raw_request
from tests.resilience.fuzz.test_token_fuzz import field_bytes

FUZZ = settings(
    max_examples=60, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck)
)
ROUTES = [b"/v1/embeddings", b"/v1/classifications", b"/v2/models/" + IRIS.encode() + b"/infer"]
CONTENT_TYPES = [b"application/json", b"application/json; charset=latin-1", b"text/plain", b""]
NOT_UTF8 = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\x80"]


@st.composite
def inference_bodies(draw: Any) -> bytes:
    """Mostly well-formed JSON with bytes that are not UTF-8 spliced into its strings or keys,
    else random bytes or random JSON."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=200))
    if kind == 1:
        model = draw(st.sampled_from([EMB, CLS, "nope"]))
        template = json.dumps({"model": model, "input": ["@@", "plain"]}).encode()
        bad = draw(st.lists(st.sampled_from(NOT_UTF8), min_size=1, max_size=3))
        return template.replace(b"@@", b"".join(bad))
    if kind == 2:
        bad = draw(st.sampled_from(NOT_UTF8))
        return b'{"model": "' + EMB.encode() + b'", "' + bad + b'": "x", "input": "x"}'
    scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=10) | st.floats()
    value = st.recursive(
        scalars,
        lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids),
        max_leaves=8,
    )
    return json.dumps(
        {"model": EMB, "input": draw(value), draw(st.text(max_size=5)): draw(value)}
    ).encode("utf-8", "surrogatepass")


@FUZZ
@given(route=st.sampled_from(ROUTES), ctype=st.sampled_from(CONTENT_TYPES), body=inference_bodies())
def test_inference_bodies_get_the_same_4xx_from_both_tiers(
    proven_stack: ProvenStack, route: bytes, ctype: bytes, body: bytes
) -> None:
    rid = uuid.uuid4().hex
    common = [(b"content-type", ctype)] if ctype else []
    proven = proof_headers(
        proven_stack.key(), "POST", route.decode(), subject="sub:user-1", rid=rid
    )
    direct = raw_request(
        proven_stack.origin.url,
        "POST",
        route,
        [*common, *((k.encode(), v.encode()) for k, v in proven.items())],
        body,
    )
    auth = [(k.encode(), v.encode()) for k, v in proven_stack.auth().items()]
    edge = raw_request(
        proven_stack.edge.url,
        "POST",
        route,
        [*common, *auth, (b"x-request-id", rid.encode())],
        body,
    )
    for answer in (direct, edge):
        assert answer.status < 500, (answer.status, answer.body[:300])
    assert direct.status == edge.status, (body[:120], direct.body[:200], edge.body[:200])


def _problem_or_answer(answer: RawAnswer) -> None:
    assert answer.status < 500, (answer.status, answer.body[:300])
    if answer.status >= 400:
        assert answer.headers["content-type"].startswith("application/problem+json"), answer
        assert json.loads(answer.body)["status"] == answer.status


segment = st.one_of(
    st.sampled_from([b"v1", b"v2", b"models", b"embeddings", b"infer", b"versions", b"..", b"."]),
    st.binary(min_size=1, max_size=12).map(
        lambda b: bytes(c for c in b if c > 32 and c not in b"?#/ \x7f") or b"x"
    ),
    st.binary(max_size=6).map(lambda b: b"".join(b"%%%02X" % c for c in b) + b"%G"),
)


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH"]),
    path=st.lists(segment, min_size=1, max_size=5),
    query=st.none() | st.binary(max_size=30).map(field_bytes),
    header_values=st.lists(st.binary(max_size=40).map(field_bytes), max_size=4),
    body=st.binary(max_size=100),
    with_token=st.booleans(),
)
def test_the_edge_answers_any_raw_request_below_500(
    proven_stack: ProvenStack,
    method: str,
    path: list[bytes],
    query: bytes | None,
    header_values: list[bytes],
    body: bytes,
    with_token: bool,
) -> None:
    target = b"/" + b"/".join(path)
    if query is not None:
        target += b"?" + query.replace(b" ", b"+").replace(b"#", b"%23").replace(b"\t", b"")
    names = [b"x-anything", b"accept", b"content-type", b"x-model-version", b"cache-control"]
    headers = list(zip(names, header_values, strict=False))
    if with_token:
        headers += [(k.encode(), v.encode()) for k, v in proven_stack.auth().items()]
    answer = raw_request(proven_stack.edge.url, method, target, headers, body)
    if method != "HEAD":
        _problem_or_answer(answer)
    else:
        assert answer.status < 500
