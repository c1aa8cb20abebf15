"""`edge.auth.attestation` in-process: Firebase App Check tokens (Google's JWKS endpoint is
FAKED by an in-memory answer with tests/fake_appcheck.py's keys; the checks are the real code,
with real RS256 signature checks) and the modes: off, monitor (counted, allowed), enforce
(refused)."""

from __future__ import annotations

from collections import Counter

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from edge.auth.attestation import AttestationVerifier
from edge.config import FIREBASE_JWKS_URL, ConfigError, parse_attestation
from tests.edge.trustkit import MemoryPlatform
from tests.fake_appcheck import ANDROID_APP, IOS_APP, PROJECT_NUMBER, FakeAppCheck

MODES = {"inference": "enforce", "models": "monitor"}


@pytest.fixture(scope="module")
def google() -> FakeAppCheck:
    return FakeAppCheck()  # its keys and tokens only: the platform answers its JWKS URL


def setup(google: FakeAppCheck, modes=MODES) -> tuple[AttestationVerifier, MemoryPlatform, Counter]:
    settings = parse_attestation(
        {
            "modes": modes,
            "issuers": [
                {"firebase_project_number": PROJECT_NUMBER, "app_ids": [ANDROID_APP, IOS_APP]}
            ],
        }
    )
    platform = MemoryPlatform()
    platform.serve_json(FIREBASE_JWKS_URL, google.jwks())
    counts: Counter = Counter()

    def count(*labels: str) -> None:
        counts[labels] += 1

    return AttestationVerifier(settings, platform, count=count), platform, counts


async def test_a_valid_app_check_token_passes(google: FakeAppCheck):
    v, platform, counts = setup(google)
    result = await v.check("inference", google.token(IOS_APP))
    assert result.allowed and result.result == "valid" and result.app_id == IOS_APP
    assert platform.fetched == [FIREBASE_JWKS_URL]
    assert counts == {("inference", "enforce", "valid"): 1}


async def test_enforce_refuses_missing_forged_expired_and_wrong_app(google: FakeAppCheck):
    v, _, counts = setup(google)
    thief = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = {
        "missing": None,
        "bad_signature": google.token(key=thief),
        "unknown_key": google.token(key=thief, kid="other"),
        "expired": google.token(expires_in=-120),
        "wrong_app": google.token("1:123456789012:web:0000"),
        "unknown_issuer": google.token(project_number="42"),
        "wrong_audience": google.token(issuer=google.issuer, project_number="42"),
        "malformed": "x.y.z",
    }
    for why, token in cases.items():
        result = await v.check("inference", token)
        assert (result.allowed, result.result, result.status) == (False, why, 401), why
        assert result.detail
    assert all(counts[("inference", "enforce", why)] == 1 for why in cases)


async def test_monitor_counts_and_allows(google: FakeAppCheck):
    v, _, counts = setup(google)
    for token in (None, google.token(expires_in=-120), google.token()):
        assert (await v.check("models", token)).allowed
    assert counts == {
        ("models", "monitor", "missing"): 1,
        ("models", "monitor", "expired"): 1,
        ("models", "monitor", "valid"): 1,
    }


async def test_off_looks_at_nothing(google: FakeAppCheck):
    v, platform, counts = setup(google)
    result = await v.check("identity", "garbage")
    assert result.allowed and result.mode == "off"
    assert platform.fetched == [] and not counts


async def test_a_token_is_verified_once_then_remembered_until_it_expires(google: FakeAppCheck):
    v, platform, _ = setup(google)
    token = google.token(expires_in=120)
    for _ in range(5):
        assert (await v.check("inference", token)).allowed
    assert platform.verifications == 1
    platform.clock += 200  # past exp plus the leeway
    assert (await v.check("inference", token)).result == "expired"


async def test_unreachable_keys_answer_503_in_enforce_and_allow_in_monitor(google: FakeAppCheck):
    v, platform, _ = setup(google)
    platform.responses.clear()  # Google unreachable before the first fetch
    enforce = await v.check("inference", google.token())
    assert (enforce.allowed, enforce.result, enforce.status) == (False, "unavailable", 503)
    assert (await v.check("models", google.token())).allowed


async def test_made_up_key_ids_refetch_at_a_bounded_rate(google: FakeAppCheck):
    v, platform, _ = setup(google)
    thief = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert (await v.check("inference", google.token())).allowed
    for i in range(20):
        await v.check("inference", google.token(key=thief, kid=f"kid-{i}"))
    assert len(platform.fetched) == 2  # the first load, and one refetch for all 20 made-up kids
    platform.mono += 31  # past the minimum refresh interval: one more fetch is allowed
    await v.check("inference", google.token(key=thief, kid="late"))
    assert len(platform.fetched) == 3


@pytest.mark.parametrize(
    "answer",
    [
        (500, b"{}"),
        (200, b"not json"),
        (200, b'{"keys": 7}'),
        (200, b"[" * 10),
        (200, b"x" * 300_000),
    ],
)
async def test_a_broken_key_set_answer_keeps_the_last_good_keys(google: FakeAppCheck, answer):
    v, platform, _ = setup(google)
    assert (await v.check("inference", google.token())).allowed
    platform.responses[FIREBASE_JWKS_URL] = answer
    platform.mono += 4000  # the key set is stale: refetched, and the answer is useless
    assert (await v.check("inference", google.token())).allowed
    assert len(platform.fetched) == 2


def test_firebase_settings_expand_to_the_app_check_rules():
    settings = parse_attestation(
        '{"modes": {"default": "monitor"}, "issuers": [{"firebase_project_number": "123", '
        '"app_ids": "1:123:ios:a, 1:123:android:b"}], "header": "X-Firebase-AppCheck"}'
    )
    (issuer,) = settings.issuers
    assert issuer.issuer == "https://firebaseappcheck.googleapis.com/123"
    assert issuer.audiences == ("projects/123",) and issuer.algorithms == ("RS256",)
    assert issuer.app_ids == ("1:123:ios:a", "1:123:android:b")
    assert settings.header == "x-firebase-appcheck"
    assert settings.mode_for("inference") == "monitor"
    assert parse_attestation("").mode_for("inference") == "off"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{", "not valid JSON"),
        ("[]", "expected an object"),
        ({"modes": {"inference": "sometimes"}}, "attestation.modes"),
        ({"modes": {"inference": "enforce"}}, "needs at least one issuer"),
        ({"issuers": [{"firebase_project_number": "12a", "app_ids": ["x"]}]}, "digits"),
        ({"issuers": [{"firebase_project_number": "1"}]}, "app_ids must name"),
        ({"issuers": [{"firebase_project_number": "1", "app_ids": ["a"], "x": 1}]}, "unknown"),
        ({"issuers": [{"issuer": "i", "jwks_url": "u", "audiences": ["a"]}]}, "missing"),
        (
            {"issuers": [{"issuer": "i", "jwks_url": "u", "audiences": [], "app_ids": ["a"]}]},
            "audiences",
        ),
        (
            {
                "issuers": [
                    {
                        "issuer": "i",
                        "jwks_url": "u",
                        "audiences": ["a"],
                        "app_ids": ["a"],
                        "algorithms": ["HS256"],
                    }
                ]
            },
            "unsupported algorithms",
        ),
        ({"header": 5}, "expected a string"),
        ({"token_cache_entries": "many"}, "expected a whole number"),
        ({"surprise": 1}, "unknown keys"),
    ],
)
def test_bad_attestation_settings_name_the_field(raw, message: str):
    with pytest.raises(ConfigError, match=message):
        parse_attestation(raw)


async def test_check_known_decides_without_io_when_it_can(google: FakeAppCheck):
    """For a path that cannot await (a cache hit): off, missing and known tokens are decided;
    a new token is not (None), and nothing is fetched or counted for it."""
    v, platform, counts = setup(google)
    token = google.token(expires_in=120)
    assert v.check_known("identity", None).allowed  # off
    assert v.check_known("inference", token) is None
    assert platform.fetched == [] and not counts
    missing = v.check_known("inference", None)
    assert (missing.allowed, missing.result) == (False, "missing")
    assert (await v.check("inference", token)).allowed
    known = v.check_known("inference", token)
    assert known.allowed and known.app_id == ANDROID_APP
    platform.clock += 200
    assert v.check_known("inference", token).result == "expired"
    assert counts[("inference", "enforce", "valid")] == 2
