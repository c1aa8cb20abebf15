"""JWT claims validation (RFC 7519 §4.1) for already signature-checked tokens.

A small module rather than PyJWT: importing the `jwt` package pulls in `ssl` (for its JWKS
client), which Cloudflare's Pyodide does not ship, and the signature half of PyJWT needs
`cryptography`. What remains is a handful of comparisons, tested in tests/edge/test_claims.py
and end to end in tests/edge/test_auth.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

REQUIRED = ("exp", "iss", "aud", "sub")


class ClaimsError(ValueError):
    """The claims are unacceptable; the message is safe to show to the client."""


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ClaimsError(f"The token's '{name}' claim is not a number.")
    return float(value)


def validate_claims(
    claims: Mapping[str, Any], *, issuer: str, audience: str, now: float, leeway: float
) -> None:
    """Raise ClaimsError unless iss/aud match and now is within [nbf, exp] (± leeway)."""
    for name in REQUIRED:
        if name not in claims:
            raise ClaimsError(f"The token lacks the '{name}' claim.")
    if claims["iss"] != issuer:
        raise ClaimsError("The token's issuer is not trusted.")
    aud = claims["aud"]
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if audience not in audiences:
        raise ClaimsError("The token's audience is not accepted.")
    if not isinstance(claims["sub"], str) or not claims["sub"]:
        raise ClaimsError("The token's subject is invalid.")
    exp = _number(claims, "exp")
    if exp is not None and now - leeway >= exp:
        raise ClaimsError("The token has expired.")
    nbf = _number(claims, "nbf")
    if nbf is not None and now + leeway < nbf:
        raise ClaimsError("The token is not valid yet.")
    iat = _number(claims, "iat")
    if iat is not None and now + leeway < iat:
        raise ClaimsError("The token was issued in the future.")
