"""JWS compact serialization read as strictly as RFC 7515/7519 require (edge/auth/jose.py), and
tokens that bend those rules refused at the edge with a 401, never a 500."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.auth.jose import JoseError, b64url_decode, json_object, parse_compact
from tests.edge.conftest import Issuer, b64url
from tests.edge.harness import EdgeUnderTest


@pytest.mark.parametrize(
    "segment",
    ["YQ==", "YQ=", "Y Q", "YQ+", "YQ/", "Y", "YR", "YW\n", "YWJ", "\u00e9"],
    ids=[
        "padded",
        "half-padded",
        "space",
        "plus",
        "slash",
        "lone-char",
        "bits-set",
        "newline",
        "bits-set-3",
        "non-ascii",
    ],
)
def test_only_canonical_unpadded_base64url_decodes(segment: str) -> None:
    with pytest.raises(JoseError):
        b64url_decode(segment)


@given(st.binary(max_size=64))
def test_every_byte_string_round_trips_through_its_one_encoding(data: bytes) -> None:
    encoded = base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    assert b64url_decode(encoded) == data


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": 1, "a": 2}',  # duplicate member
        b'{"exp": NaN}',
        b'{"exp": Infinity}',
        b"[1, 2]",  # not an object
        '{"a": "b"}'.encode("utf-16"),  # not UTF-8
        b'{"a": "\xff"}',
        b"{" * 5 + b"}" * 5,
        b'{"a": ' + b"[" * 20 + b"1" + b"]" * 20 + b"}",  # nested deeper than allowed
    ],
)
def test_json_that_rfc_7515_forbids_is_refused(raw: bytes) -> None:
    with pytest.raises(JoseError):
        json_object(raw)


def _token(header: dict[str, Any], claims: dict[str, Any]) -> str:
    h = b64url(json.dumps(header).encode())
    c = b64url(json.dumps(claims).encode())
    return f"{h}.{c}.{b64url(b'sig')}"


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "ES256", "crit": ["exp"], "exp": 1},
        {"alg": "ES256", "typ": "dpop+jwt"},  # a DPoP proof is not an access token
        {"alg": "ES256", "typ": 7},
    ],
)
def test_crit_and_foreign_typ_are_refused(header: dict[str, Any]) -> None:
    with pytest.raises(JoseError):
        parse_compact(_token(header, {"sub": "x"}), ("jwt", "at+jwt"))


@pytest.mark.parametrize("typ", ["JWT", "at+jwt", "application/at+JWT"])
def test_access_token_types_are_accepted(typ: str) -> None:
    jws = parse_compact(_token({"alg": "ES256", "typ": typ}, {"sub": "x"}), ("jwt", "at+jwt"))
    assert jws.claims == {"sub": "x"}


def _resign(issuer: Issuer, header: dict[str, Any], raw_claims: bytes) -> str:
    """A token with this exact header and claims bytes, validly signed by the issuer's key."""
    import jwt

    key = issuer.keys["ed-1"]
    h = b64url(json.dumps(header).encode())
    c = b64url(raw_claims)
    signing_input = f"{h}.{c}".encode()
    sig = jwt.algorithms.OKPAlgorithm().sign(signing_input, key.private)
    return f"{h}.{c}.{b64url(sig)}"


async def test_validly_signed_tokens_that_bend_the_rules_are_401(
    make_edge: Any, mem_issuer: Issuer
) -> None:
    """Signed with the trusted key, so only the strict reading refuses them."""
    edge: EdgeUnderTest = make_edge()
    claims = mem_issuer.claims()
    good = json.dumps(claims).encode()
    header = {"alg": "EdDSA", "kid": "ed-1"}
    assert (await edge.embed(_resign(mem_issuer, header, good), "x")).status_code == 200
    bent = [
        _resign(mem_issuer, header, good[:-1] + b', "sub": "admin"}'),  # duplicate sub
        _resign(mem_issuer, {**header, "crit": ["b64"], "b64": False}, good),
        _resign(mem_issuer, {**header, "typ": "dpop+jwt"}, good),
        _resign(mem_issuer, header, good.replace(b'"exp": ', b'"exp": 1e999, "x": ')),
    ]
    for token in bent:
        resp = await edge.embed(token, "x")
        assert resp.status_code == 401, resp.text
        assert 'error="invalid_token"' in resp.headers["www-authenticate"]


async def test_a_known_key_never_waits_for_a_jwks_refresh(
    make_edge: Any, mem_issuer: Issuer
) -> None:
    """Past the JWKS TTL, with the issuer frozen, a new token signed by a known key is verified
    at once; the refresh happens in the background."""
    import asyncio

    edge: EdgeUnderTest = make_edge(
        {
            "issuers": [
                {
                    "issuer": mem_issuer.url,
                    "jwks_url": mem_issuer.url + "/keys",
                    "jwks_ttl_seconds": 1,
                }
            ]
        }
    )
    assert (await edge.embed(mem_issuer.token("ed-1", sub="a"), "x")).status_code == 200
    frozen = asyncio.Event()
    original = edge.platform.handlers[mem_issuer.url]

    async def frozen_issuer(call: Any) -> Any:
        await frozen.wait()
        return await original(call)

    edge.platform.serve(mem_issuer.url, frozen_issuer)
    edge.platform.advance(5)  # the keys are past their TTL
    resp = await asyncio.wait_for(edge.embed(mem_issuer.token("ed-1", sub="b"), "y"), 2)
    assert resp.status_code == 200
    frozen.set()
