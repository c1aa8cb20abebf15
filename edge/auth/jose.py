"""JWS compact serialization read as strictly as RFC 7515 and RFC 7519 require.

- Three segments, each unpadded base64url (RFC 7515 §2, §7.1): any other character, `=`
  padding, or bits left over in the last character are refused.
- Header and claims are UTF-8 JSON objects (RFC 8259 §8.1) without duplicate member names
  (RFC 7515 §4, RFC 7519 §4), without `NaN`, `Infinity` or numbers too large for a float,
  nested no deeper than `MAX_DEPTH`.
- `crit` is refused: this implementation understands no extension (RFC 7515 §4.1.11).
- `typ`, when present, must say this is the kind of JWT the caller expects (RFC 8725 §3.11:
  an access token is not a DPoP proof, and the other way round).

Only the stdlib: this runs in Cloudflare's Pyodide too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge.runtime.base import Platform

MAX_DEPTH = 16
# alg -> (JWK kty, JWK crv or None): the only algorithms the platforms verify.
KEY_TYPES: dict[str, tuple[str, str | None]] = {
    "EdDSA": ("OKP", "Ed25519"),
    "ES256": ("EC", "P-256"),
    "RS256": ("RSA", None),
}
# RFC 7638 §3.2: the required members of each key type, in the order they are hashed.
THUMBPRINT_MEMBERS: dict[str, tuple[str, ...]] = {
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
    "RSA": ("e", "kty", "n"),
}
# Members only a private (or symmetric) key has: such a key is never accepted.
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# base64url to base64 for binascii's strict decoder, which then refuses anything else: `+`, `/`
# and `=` become an invalid character, and so does any non-alphabet byte already.
_TO_BASE64 = bytes.maketrans(b"-_+/=", b"+/***")
_REMAINDER_BITS = {2: 0b1111, 3: 0b11}  # the bits the last character carries beyond the bytes
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


class JoseError(ValueError):
    """The JWS is malformed; the message is safe to show to the client."""


def b64url_decode(segment: str) -> bytes:
    """Unpadded base64url (RFC 7515 §2), strictly: raises JoseError on anything else."""
    rest = len(segment) % 4
    try:
        data = binascii.a2b_base64(
            segment.encode("ascii").translate(_TO_BASE64) + b"=" * (-rest % 4), strict_mode=True
        )
    except (UnicodeEncodeError, binascii.Error):
        raise JoseError("bad base64url") from None
    if rest and _ALPHABET.index(segment[-1]) & _REMAINDER_BITS[rest]:
        raise JoseError("bad base64url")  # non-canonical: the same bytes have one encoding
    return data


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise JoseError(f"duplicate member {name!r}")
        out[name] = value
    return out


def _no_constant(name: str) -> Any:
    raise JoseError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):  # 1e999: valid JSON, but no NumericDate
        raise JoseError("number out of range")
    return value


def _depth(value: Any, level: int = 1) -> None:
    if level > MAX_DEPTH:
        raise JoseError("nested too deeply")
    if isinstance(value, dict):
        for item in value.values():
            _depth(item, level + 1)
    elif isinstance(value, list):
        for item in value:
            _depth(item, level + 1)


# One decoder for every call: `json.loads` with hooks builds a new one each time (a DPoP proof
# is parsed on every request).
_DECODER = json.JSONDecoder(
    object_pairs_hook=_unique, parse_constant=_no_constant, parse_float=_finite
)


def json_object(data: bytes) -> dict[str, Any]:
    """A UTF-8 JSON object, strictly (see the module docstring)."""
    try:
        text = data.decode("utf-8")
        value = _DECODER.decode(text)
    except JoseError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise JoseError("not a JSON object") from None
    if not isinstance(value, dict):
        raise JoseError("not a JSON object")
    if text.count("{") + text.count("[") > MAX_DEPTH:  # fewer brackets cannot nest deeper
        _depth(value)
    return value


def segment_object(segment: str) -> dict[str, Any]:
    """A base64url segment holding a JSON object, strictly."""
    return json_object(b64url_decode(segment))


def split(token: str, max_chars: int) -> tuple[str, str, str]:
    """The three segments of a compact JWS no longer than `max_chars` (none empty)."""
    if len(token) > max_chars:
        raise JoseError("too large")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise JoseError("not a JWS compact serialization")
    return parts[0], parts[1], parts[2]


def key_fits(alg: str, jwk: Mapping[str, Any]) -> bool:
    """Whether public key `jwk` is of the type `alg` needs, for signing, with no private
    member."""
    kty, crv = KEY_TYPES.get(alg, ("", None))
    if not kty or jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
        return False
    if PRIVATE_MEMBERS.intersection(jwk):
        return False
    if jwk.get("alg", alg) != alg or jwk.get("use", "sig") != "sig":
        return False
    return all(isinstance(jwk.get(m), str) and jwk[m] for m in THUMBPRINT_MEMBERS[kty])


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint, base64url: a DPoP key's `jkt`, and a device's id."""
    members = THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None:
        raise JoseError("unsupported key type")
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


@dataclass(frozen=True, slots=True)
class CompactJws:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


def parse_compact(token: str, typ: tuple[str, ...], max_chars: int = 8192) -> CompactJws:
    """The parts of a compact JWS whose `typ`, if present, is one of `typ` (compared without
    case and without an `application/` prefix, RFC 7515 §4.1.9). Raises JoseError."""
    parts = split(token, max_chars)
    header = segment_object(parts[0])
    claims = segment_object(parts[1])
    signature = b64url_decode(parts[2])
    if "crit" in header:
        raise JoseError("unsupported critical header parameters")
    kind = header.get("typ")
    if kind is not None:
        if not isinstance(kind, str):
            raise JoseError("bad typ")
        kind = kind.lower().removeprefix("application/")
        if kind not in typ:
            raise JoseError("unexpected typ")
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    return CompactJws(header, claims, signing_input, signature)
