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
import json
import re
from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 16
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_REMAINDER_BITS = {2: 0b1111, 3: 0b11}  # the bits the last character carries beyond the bytes
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


class JoseError(ValueError):
    """The JWS is malformed; the message is safe to show to the client."""


def b64url_decode(segment: str) -> bytes:
    """Unpadded base64url (RFC 7515 §2), strictly: raises JoseError on anything else."""
    if not _B64URL.fullmatch(segment) or len(segment) % 4 == 1:
        raise JoseError("bad base64url")
    rest = len(segment) % 4
    if rest and _ALPHABET.index(segment[-1]) & _REMAINDER_BITS[rest]:
        raise JoseError("bad base64url")  # non-canonical: the same bytes have one encoding
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):  # pragma: no cover - excluded by the checks above
        raise JoseError("bad base64url") from None


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


def json_object(data: bytes) -> dict[str, Any]:
    """A UTF-8 JSON object, strictly (see the module docstring)."""
    try:
        text = data.decode("utf-8")
        value = json.loads(
            text, object_pairs_hook=_unique, parse_constant=_no_constant, parse_float=_finite
        )
    except JoseError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise JoseError("not a JSON object") from None
    if not isinstance(value, dict):
        raise JoseError("not a JSON object")
    _depth(value)
    return value


@dataclass(frozen=True, slots=True)
class CompactJws:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


def parse_compact(token: str, typ: tuple[str, ...]) -> CompactJws:
    """The parts of a compact JWS whose `typ`, if present, is one of `typ` (compared without
    case and without an `application/` prefix, RFC 7515 §4.1.9). Raises JoseError."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[0] or not parts[1] or not parts[2]:
        raise JoseError("not a JWS compact serialization")
    header = json_object(b64url_decode(parts[0]))
    claims = json_object(b64url_decode(parts[1]))
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
