"""JWS compact serialisation (RFC 7515) for the edge's proof and attestation checks.

Parsing is strict where it is cheap: base64url without padding or foreign characters, JSON
objects for the header and the payload, a key whose type matches the algorithm. Signatures are
checked by the platform (`cryptography` locally, WebCrypto in Workers), so this module imports
nothing outside the standard library.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge.runtime.base import Platform

# alg -> (JWK kty, JWK crv or None): the only algorithms the platforms verify.
KEY_TYPES: dict[str, tuple[str, str | None]] = {
    "EdDSA": ("OKP", "Ed25519"),
    "ES256": ("EC", "P-256"),
    "RS256": ("RSA", None),
}
# RFC 7638 section 3.2: the required members of each key type, in the order they are hashed.
THUMBPRINT_MEMBERS: dict[str, tuple[str, ...]] = {
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
    "RSA": ("e", "kty", "n"),
}
# Members that only a private (or symmetric) key has: such a key is never accepted.
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")


class JwsError(ValueError):
    """The input is not an acceptable JWS; the message is safe to show to the client."""


@dataclass(slots=True)
class CompactJws:
    """A parsed (not yet verified) compact JWS."""

    header_segment: str
    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes


def b64url_decode(segment: str) -> bytes:
    """Decode unpadded base64url; raises JwsError on padding or any other character."""
    if len(segment) % 4 == 1 or _B64URL.fullmatch(segment) is None:
        raise JwsError("bad base64url")
    try:
        data = segment.encode("ascii").translate(_TO_STANDARD)
        return binascii.a2b_base64(data + b"=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise JwsError("bad base64url") from None


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def json_object(segment: str, what: str) -> dict[str, Any]:
    """A base64url segment holding a JSON object."""
    try:
        value = json.loads(b64url_decode(segment).decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):  # JwsError is a ValueError
        raise JwsError(f"the {what} is not base64url JSON") from None
    if not isinstance(value, dict):
        raise JwsError(f"the {what} is not a JSON object")
    return value


def split(token: str, max_chars: int) -> tuple[str, str, str]:
    """The three segments of a compact JWS no longer than `max_chars`."""
    if len(token) > max_chars:
        raise JwsError("too large")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise JwsError("not a JWS compact serialization")
    return parts[0], parts[1], parts[2]


def parse(token: str, max_chars: int) -> CompactJws:
    """Split and decode a compact JWS (header and payload must be JSON objects)."""
    h, p, s = split(token, max_chars)
    header = json_object(h, "header")
    payload = json_object(p, "payload")
    return CompactJws(h, header, payload, f"{h}.{p}".encode("ascii"), b64url_decode(s))


def key_fits(alg: str, jwk: Mapping[str, Any]) -> bool:
    """Whether public key `jwk` is of the type `alg` needs (and carries no private member)."""
    kty, crv = KEY_TYPES.get(alg, ("", None))
    if not kty or jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
        return False
    if PRIVATE_MEMBERS.intersection(jwk):
        return False
    if jwk.get("alg", alg) != alg or jwk.get("use", "sig") != "sig":
        return False
    return all(isinstance(jwk.get(m), str) and jwk[m] for m in THUMBPRINT_MEMBERS[kty])


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint, base64url: the `jkt` of a DPoP key, and a device's id."""
    members = THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None:
        raise JwsError("unsupported key type")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


async def verify(
    platform: Platform, alg: str, jwk: Mapping[str, Any], signing_input: bytes, signature: bytes
) -> bool:
    """The platform's signature check; any error from it counts as a bad signature."""
    try:
        return bool(await platform.verify_signature(alg, jwk, signing_input, signature))
    except Exception:  # malformed key material, wrong signature length, WebCrypto errors
        return False
