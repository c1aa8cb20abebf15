"""`edge.auth.dpop` in-process (real signature checks, in-memory platform): a device-bound token is
useless without the device key, and every way of bending a proof is refused with the right
`WWW-Authenticate: DPoP` error, never an exception."""

from __future__ import annotations

import asyncio
import base64
import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from edge.auth.bearer import AuthError, bound_key, credentials
from edge.auth.dpop import (
    DpopError,
    DpopVerifier,
    ReplayCache,
    challenge,
    normalize_url,
    request_url,
)
from edge.auth.jose import b64url
from edge.config import ConfigError, DpopSettings, parse_dpop
from outpost.devicekey import DeviceKey
from tests.edge.trustkit import MemoryPlatform

URL = "https://api.example.com/v1/embeddings"
TOKEN = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJkZXZpY2UifQ.c2ln"  # verified before, by edge.auth


def verifier(**settings: object) -> tuple[DpopVerifier, MemoryPlatform]:
    platform = MemoryPlatform()
    return DpopVerifier(DpopSettings(**settings), platform), platform  # type: ignore[arg-type]


async def check(v: DpopVerifier, key: DeviceKey, proof: str | None, **kw: object):
    args: dict = {
        "scheme": "dpop",
        "access_token": TOKEN,
        "token_jkt": key.jkt,
        "proof": proof,
        "method": "POST",
        "url": URL,
        "route_class": "inference",
    }
    args.update(kw)
    return await v.check_request(**args)


async def refused(v: DpopVerifier, key: DeviceKey, proof: str | None, **kw: object) -> DpopError:
    with pytest.raises(DpopError) as info:
        await check(v, key, proof, **kw)
    assert info.value.status == 401
    return info.value


async def test_a_fresh_proof_from_the_device_key_is_accepted():
    v, platform = verifier()
    key = DeviceKey()
    proof = await check(v, key, key.proof("POST", URL, TOKEN))
    assert proof is not None and proof.jkt == key.jkt
    assert platform.verifications == 1


async def test_a_stolen_token_is_useless_without_the_device_key():
    v, _ = verifier()
    device, thief = DeviceKey(), DeviceKey()
    missing = await refused(v, device, None)
    assert missing.error == "invalid_dpop_proof"
    # The thief signs a perfect proof, with their own key: the binding says no.
    wrong_key = await refused(v, device, thief.proof("POST", URL, TOKEN))
    assert wrong_key.error == "invalid_token"
    assert "binding" in wrong_key.description
    # Downgrading to Bearer does not skip the proof.
    bearer = await refused(v, device, None, scheme="bearer")
    assert bearer.error == "invalid_token"


async def test_a_replayed_proof_is_refused_even_when_sent_concurrently():
    v, _ = verifier()
    key = DeviceKey()
    proof = key.proof("POST", URL, TOKEN)
    results = await asyncio.gather(
        *(check(v, key, proof) for _ in range(5)), return_exceptions=True
    )
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, DpopError) for r in results if isinstance(r, Exception))
    again = await refused(v, key, proof)
    assert "already used" in again.description


async def test_a_proof_only_opens_the_request_it_names():
    v, _ = verifier()
    key = DeviceKey()
    other_token = TOKEN + "x"
    cases = {
        "method": key.proof("GET", URL, TOKEN),
        "path": key.proof("POST", "https://api.example.com/v1/classifications", TOKEN),
        "host": key.proof("POST", "https://evil.example.com/v1/embeddings", TOKEN),
        "scheme": key.proof("POST", "http://api.example.com/v1/embeddings", TOKEN),
        "port": key.proof("POST", "https://api.example.com:8443/v1/embeddings", TOKEN),
        "token (ath)": key.proof("POST", URL, other_token),
        "no ath": key.proof("POST", URL),
    }
    for what, proof in cases.items():
        err = await refused(v, key, proof)
        assert err.error == "invalid_dpop_proof", what


async def test_equivalent_urls_match():
    v, _ = verifier()
    key = DeviceKey()
    for htu in (
        "HTTPS://API.example.com:443/v1/embeddings",
        "https://api.example.com/v1/embeddings?q=1#frag",
    ):
        assert await check(v, key, key.proof("POST", htu, TOKEN)) is not None


async def test_public_url_pins_what_proofs_name():
    settings = DpopSettings(public_url="https://api.example.com")
    url = request_url("http", "10.0.0.5:8787", "/v1/embeddings", settings.public_url)
    assert url == URL
    assert request_url("http", "127.0.0.1:8787", "/v1/x") == "http://127.0.0.1:8787/v1/x"


async def test_the_time_window():
    v, platform = verifier(max_age_seconds=60, clock_skew_seconds=10)
    key = DeviceKey()
    now = platform.clock
    assert await check(v, key, key.proof("POST", URL, TOKEN, iat=now - 50)) is not None
    assert await check(v, key, key.proof("POST", URL, TOKEN, iat=now + 5)) is not None
    old = await refused(v, key, key.proof("POST", URL, TOKEN, iat=now - 120))
    assert "too old" in old.description
    future = await refused(v, key, key.proof("POST", URL, TOKEN, iat=now + 60))
    assert "future" in future.description


async def test_unbound_tokens_keep_working_as_bearer_unless_a_class_requires_keys():
    v, _ = verifier(require_for=("inference",))
    key = DeviceKey()
    assert await check(v, key, None, scheme="bearer", token_jkt=None, route_class="models") is None
    needed = await refused(v, key, None, scheme="bearer", token_jkt=None)
    assert needed.error == "invalid_token"
    dpop_unbound = await refused(v, key, key.proof("POST", URL, TOKEN), token_jkt=None)
    assert dpop_unbound.error == "invalid_token"


async def test_eddsa_proofs_are_accepted():
    v, _ = verifier()
    private = ed25519.Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes_raw()
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
    from edge.auth.jose import thumbprint

    claims = {"jti": "e-1", "htm": "POST", "htu": URL, "iat": int(v._platform.now()), "ath": ath()}
    proof = jwt.encode(claims, private, "EdDSA", headers={"typ": "dpop+jwt", "jwk": jwk})
    result = await v.check_request(
        scheme="dpop",
        access_token=TOKEN,
        token_jkt=thumbprint(jwk),
        proof=proof,
        method="POST",
        url=URL,
        route_class="inference",
    )
    assert result is not None and result.jkt == thumbprint(jwk)


def ath(token: str = TOKEN) -> str:
    import hashlib

    return b64url(hashlib.sha256(token.encode()).digest())


def seg(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def bad_proofs(key: DeviceKey, now: float) -> dict[str, str]:
    claims = {"jti": "j-1", "htm": "POST", "htu": URL, "iat": int(now), "ath": ath()}
    header = {"typ": "dpop+jwt", "jwk": key.jwk}
    es = key.private_key
    good = jwt.encode(claims, es, "ES256", headers=header)
    h, p, s = good.split(".")
    other = ec.generate_private_key(ec.SECP256R1())
    return {
        "signed by another key": jwt.encode(claims, other, "ES256", headers=header),
        "payload swapped after signing": f"{h}.{seg({**claims, 'htm': 'GET'})}.{s}",
        "signature truncated": f"{h}.{p}.{s[:20]}",
        "alg none": f"{seg({**header, 'alg': 'none'})}.{p}.",
        "HS256": jwt.encode(claims, "k" * 32, "HS256", headers=header),
        "typ JWT": jwt.encode(claims, es, "ES256", headers={**header, "typ": "JWT"}),
        "no typ": f"{seg({'alg': 'ES256', 'jwk': key.jwk})}.{p}.{s}",
        "private d in jwk": jwt.encode(
            claims, es, "ES256", headers={**header, "jwk": {**key.jwk, "d": "AAAA"}}
        ),
        "jwk of the wrong type": jwt.encode(
            claims, es, "ES256", headers={**header, "jwk": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}}
        ),
        "jwk not an object": jwt.encode(claims, es, "ES256", headers={**header, "jwk": [1]}),
        "crit header": jwt.encode(claims, es, "ES256", headers={**header, "crit": ["x"]}),
        "header not JSON": f"{b64url(b'{nope')}.{p}.{s}",
        "header a list": f"{seg([1, 2])}.{p}.{s}",
        "payload not JSON": f"{h}.{b64url(b'[[[')}.{s}",
        "deeply nested payload": f"{h}.{b64url(b'[' * 100_000)}.{s}",
        "padding": f"{h}=.{p}.{s}",
        "non-base64 characters": f"{h}.{p}!.{s}",
        "two segments": f"{h}.{p}",
        "empty": "",
        "two headers joined": f"{good}, {good}",
        "oversized": "a" * 5000,
        "no jti": jwt.encode(
            {k: v for k, v in claims.items() if k != "jti"}, es, "ES256", headers=header
        ),
        "huge jti": jwt.encode({**claims, "jti": "j" * 200}, es, "ES256", headers=header),
        "iat a string": jwt.encode({**claims, "iat": "now"}, es, "ES256", headers=header),
        "iat a bool": jwt.encode({**claims, "iat": True}, es, "ES256", headers=header),
        "htu not a URL": jwt.encode({**claims, "htu": "::::"}, es, "ES256", headers=header),
        "htu a number": jwt.encode({**claims, "htu": 7}, es, "ES256", headers=header),
        "htu with a bad port": jwt.encode(
            {**claims, "htu": "https://api.example.com:99999/v1/embeddings"},
            es,
            "ES256",
            headers=header,
        ),
        "non-ASCII": "é" * 50,
    }


@pytest.mark.parametrize("case", sorted(bad_proofs(DeviceKey(), 0)))
async def test_bent_proofs_are_refused_not_raised(case: str):
    v, platform = verifier()
    key = DeviceKey()
    proof = bad_proofs(key, platform.clock)[case]
    err = await refused(v, key, proof)
    assert err.error in ("invalid_dpop_proof", "invalid_token")
    header = v.error_header(err)
    assert header.startswith('DPoP error="') and 'algs="ES256 EdDSA"' in header


async def test_parsed_headers_and_urls_stay_bounded():
    v, _ = verifier()
    key = DeviceKey()
    for i in range(12_000):
        junk = seg({"typ": "dpop+jwt", "alg": "ES256", "n": i})
        with pytest.raises(DpopError):
            await check(v, key, f"{junk}.e30.c2ln")
    assert len(v._headers) <= 10_000 and len(v._urls) <= 10_000


def test_the_replay_cache_drops_expired_ids_first_and_is_bounded():
    cache = ReplayCache(3)
    for i in range(3):
        cache.add(f"k{i}", expires=100 + i, now=50)
    cache.add("k3", expires=200, now=101)  # k0 and k1 have expired: both go
    assert not cache.seen("k0") and not cache.seen("k1") and cache.seen("k2")
    cache.add("k4", expires=200, now=101)
    cache.add("k5", expires=200, now=101)  # full of live ids: the oldest goes, and is counted
    assert len(cache) == 3 and cache.evicted_live == 1


def test_credentials_and_challenges():
    assert credentials("DPoP abc") == ("dpop", "abc")
    assert credentials("bearer  abc ") == ("bearer", "abc")
    assert credentials("Basic abc") is None
    assert challenge(("ES256",)) == 'DPoP algs="ES256"'
    assert challenge(("ES256",), "invalid_token", "Nope.") == (
        'DPoP error="invalid_token", error_description="Nope.", algs="ES256"'
    )


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("https://A.example/x", "https://a.example/x"),
        ("https://a.example:443/x?q#f", "https://a.example/x"),
        ("http://a.example:80", "http://a.example/"),
        ("http://a.example:8080/%76", "http://a.example:8080/v"),
        ("http://[::1]:8787/x", "http://[::1]:8787/x"),
        ("ftp://a.example/x", None),
        ("https:///x", None),
        ("https://a.example:bad/x", None),
    ],
)
def test_normalize_url(url: str, normal: str | None):
    assert normalize_url(url) == normal


def test_dpop_settings_parse_from_env_json():
    settings = parse_dpop(
        '{"max_age_seconds": "30", "require_for": "inference, models", '
        '"public_url": "https://api.example.com"}'
    )
    assert settings.max_age_seconds == 30.0
    assert settings.require_for == ("inference", "models")
    assert parse_dpop("") == DpopSettings()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"algorithms": ["HS256"]}', "unsupported algorithms"),
        ('{"algorithms": []}', "unsupported algorithms"),
        ('{"max_age_seconds": 0}', "max_age_seconds"),
        ('{"public_url": "api.example.com"}', "public_url must be http"),
        ('{"replay_cache_entries": "lots"}', "expected a whole number"),
        ('{"nonce": true}', "unknown keys"),
        ("[1]", "expected an object"),
    ],
)
def test_bad_dpop_settings_name_the_field(raw: str, message: str):
    with pytest.raises(ConfigError, match=message):
        parse_dpop(raw)


def test_token_jkt_reads_the_binding_and_refuses_a_malformed_one():
    assert bound_key({"sub": "client:x"}) is None
    assert bound_key({"cnf": {"jkt": "abc"}}) == "abc"
    for bad in ({"cnf": "abc"}, {"cnf": {}}, {"cnf": {"jkt": 7}}, {"cnf": {"jkt": "x" * 200}}):
        with pytest.raises(AuthError) as info:
            bound_key(bad)
        assert info.value.error == "invalid_token"
