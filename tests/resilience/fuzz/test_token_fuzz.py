"""Hypothesis against `/oauth/token` on both tiers at once: form bodies with raw bytes (not
UTF-8, not ASCII, escapes of either), repeated and unknown keys, huge values; Basic credentials
that are not base64, not UTF-8 or not `id:secret`; stray DPoP headers. The same bytes go to the
origin directly (with a caller proof, as an internal service) and through the edge: both give
the same status, never a 5xx, and a body the client can read (an OAuth error or a problem)."""

from __future__ import annotations

import base64
import uuid
from typing import Any
from urllib.parse import quote_from_bytes

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.resilience.conftest import ProvenStack, proof_headers
from tests.resilience.fuzz.raw import RawAnswer, raw_request

FUZZ = settings(
    max_examples=60, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck)
)
DEVICE_GRANT = "urn:outpost:params:oauth:grant-type:device-registration"
KEYS = [
    b"grant_type",
    b"client_id",
    b"client_secret",
    b"api_key",
    b"refresh_token",
    b"scope",
    b"device_id",
]
GRANTS = [b"client_credentials", b"refresh_token", DEVICE_GRANT.encode(), b"password", b""]

# Bytes of every kind: ASCII, UTF-8 of any code point, lone surrogates' bytes, bytes that are
# never UTF-8 (0x80-0xFF alone), NUL.
raw_values = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=32).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from(GRANTS),
    st.sampled_from([b"opk.demo-app." + b"A" * 43, b"ort." + b"A" * 22 + b".1." + b"B" * 43]),
)


@st.composite
def form_bodies(draw: Any) -> bytes:
    """A form body: pairs of known or random keys and values, sent raw or percent-escaped,
    keys repeated at times, and sometimes one huge value."""
    pairs = draw(
        st.lists(
            st.tuples(st.sampled_from(KEYS) | st.binary(max_size=12), raw_values),
            max_size=8,
        )
    )
    if draw(st.booleans()):
        pairs.insert(0, (b"grant_type", draw(st.sampled_from(GRANTS))))
    if draw(st.integers(0, 9)) == 0:
        pairs.append((b"api_key", b"x" * draw(st.integers(1000, 20000))))
    escape = draw(st.booleans())
    parts = []
    for key, value in pairs:
        if escape:
            key, value = quote_from_bytes(key).encode(), quote_from_bytes(value).encode()
        parts.append(key + b"=" + value)
    return b"&".join(parts)


def field_bytes(raw: bytes) -> bytes:
    """`raw` cut to what a header value may hold (RFC 9110 §5.5: visible ASCII, space, tab and
    obs-text bytes 0x80-0xFF); malformed HTTP itself is tests/edge/test_http_limits.py's."""
    return bytes(b for b in raw if b in (9, 32) or 33 <= b <= 126 or b >= 128)


@st.composite
def basic_credentials(draw: Any) -> bytes:
    """An Authorization value: Basic with base64 of random bytes (not UTF-8 at times, no
    colon at times), random bytes that are not base64, or another scheme."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return b"Basic " + base64.b64encode(draw(st.binary(max_size=96)))
    if kind == 1:
        return b"Basic " + field_bytes(draw(st.binary(max_size=96)))
    if kind == 2:
        user = draw(st.text(max_size=20)).encode("utf-8", "surrogatepass")
        secret = draw(st.binary(max_size=20))
        return b"Basic " + base64.b64encode(user + b":" + secret)
    scheme = draw(st.sampled_from([b"Bearer ", b"basic ", b"Basic  ", b"", b"Digest "]))
    return scheme + base64.b64encode(draw(st.binary(max_size=30)))


def _readable(answer: RawAnswer) -> None:
    assert answer.status < 500, (answer.status, answer.body[:300])
    if answer.status >= 400:
        body = answer.json()
        assert "error" in body or body.get("type", "").startswith("urn:outpost:problem:"), body


def both_tiers(
    stack: ProvenStack, headers: list[tuple[bytes, bytes]], body: bytes
) -> tuple[RawAnswer, RawAnswer]:
    """The same request sent directly to the origin (proven) and through the edge."""
    rid = uuid.uuid4().hex
    proven = proof_headers(stack.key(), "POST", "/oauth/token", subject="ip:127.0.0.1", rid=rid)
    common = [(b"content-type", b"application/x-www-form-urlencoded"), *headers]
    direct = raw_request(
        stack.origin.url,
        "POST",
        b"/oauth/token",
        [*common, *((k.encode(), v.encode()) for k, v in proven.items())],
        body,
    )
    edge = raw_request(
        stack.edge.url, "POST", b"/oauth/token", [*common, (b"x-request-id", rid.encode())], body
    )
    return direct, edge


@FUZZ
@given(body=form_bodies())
def test_token_form_bodies_get_the_same_4xx_from_both_tiers(
    proven_stack: ProvenStack, body: bytes
) -> None:
    direct, edge = both_tiers(proven_stack, [], body)
    _readable(direct)
    _readable(edge)
    assert direct.status == edge.status, (direct.body[:200], edge.body[:200])


@FUZZ
@given(
    authorization=basic_credentials(),
    repeated=st.booleans(),
    dpop=st.none() | st.binary(max_size=64).map(field_bytes),
)
def test_token_client_credentials_get_the_same_4xx_from_both_tiers(
    proven_stack: ProvenStack, authorization: bytes, repeated: bool, dpop: bytes | None
) -> None:
    headers = [(b"authorization", authorization)]
    if repeated:  # a second Authorization: one field, per RFC 9110, so a malformed one
        headers.append((b"authorization", b"Basic " + base64.b64encode(b"demo-service:x")))
    if dpop is not None:
        headers.append((b"dpop", dpop))
    direct, edge = both_tiers(proven_stack, headers, b"grant_type=client_credentials")
    _readable(direct)
    _readable(edge)
    assert direct.status == edge.status, (direct.body[:200], edge.body[:200])
    assert direct.status != 200  # no made-up credential is ever good


def test_the_demo_clients_real_credentials_pass_on_both_tiers(proven_stack: ProvenStack) -> None:
    """The control for the properties above: a well-formed request is served by both."""
    secret = proven_stack.vault.boot.demo_client_secret or ""
    basic = base64.b64encode(f"demo-service:{quote_from_bytes(secret.encode())}".encode())
    direct, edge = both_tiers(
        proven_stack, [(b"authorization", b"Basic " + basic)], b"grant_type=client_credentials"
    )
    assert (direct.status, edge.status) == (200, 200), (direct.body, edge.body)
    assert direct.json()["token_type"] == "Bearer" and edge.json()["access_token"]
    # Authorization is one field: the good credentials twice are one malformed value.
    twice = [(b"authorization", b"Basic " + basic)] * 2
    direct, edge = both_tiers(proven_stack, twice, b"grant_type=client_credentials")
    assert (direct.status, edge.status) == (401, 401)
