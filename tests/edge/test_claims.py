"""edge.auth.claims: the claim checks that run after the platform verified the signature."""

from __future__ import annotations

import pytest

from edge.auth.claims import ClaimsError, validate_claims

NOW = 1_800_000_000.0
GOOD = {"iss": "https://id", "aud": "outpost", "sub": "u", "exp": NOW + 60, "nbf": NOW, "iat": NOW}


def check(**changes: object) -> bool:
    """True when the claims pass; ClaimsError propagates otherwise."""
    claims = {**GOOD, **changes}
    claims = {k: v for k, v in claims.items() if v is not None}
    validate_claims(claims, issuer="https://id", audience="outpost", now=NOW, leeway=30)
    return True


def test_good_claims_and_audience_lists_pass() -> None:
    assert check()
    assert check(aud=["other", "outpost"])
    assert check(exp=NOW - 29)  # within leeway


@pytest.mark.parametrize(
    "changes",
    [
        {"exp": NOW - 31},
        {"nbf": NOW + 31},
        {"iat": NOW + 31},
        {"iss": "https://evil"},
        {"aud": "other"},
        {"aud": ["a", "b"]},
        {"exp": None},
        {"sub": None},
        {"sub": ""},
        {"exp": "tomorrow"},
        {"exp": True},
    ],
)
def test_bad_claims_raise(changes: dict) -> None:
    with pytest.raises(ClaimsError):
        check(**changes)
