"""The edge's proof to an origin that a request comes from it, and for whom (the caller proof).

Every request the edge forwards carries one header:

    X-Outpost-Caller: v1; kid=<key id>; t=<unix seconds>; sub=<subject>; sig=<mac>

where `subject` is the base64url (unpadded) UTF-8 of the subject the edge verified (`sub:<token
subject>` or `ip:<client address>`), and `mac` the base64url (unpadded) HMAC-SHA256, under the
key named by `kid`, of these lines joined by `\\n`:

    outpost-caller-v1, kid, t, method, target (path and query as sent), X-Request-ID, subject

The key (32 random bytes) lives in Vault (`secret/outpost/origin/caller`); the origin reads it
through its secrets snapshot and checks the header in `origin/caller.py`. Stdlib only: this
module runs in Cloudflare's Pyodide too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass, field

HEADER = "x-outpost-caller"
VERSION = "v1"
KEY_BYTES = 32
MAX_SUBJECT_BYTES = 256
_KID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_B64 = re.compile(r"[A-Za-z0-9+/_-]{43}=?")


class KeyFormatError(ValueError):
    """A caller key setting that is not `<key id>:<base64 of 32 bytes>` (never says more: the
    value is a secret)."""


def parse_key(text: str) -> tuple[str, bytes]:
    """(key id, key) from the edge's setting `<key id>:<base64 of the 32 key bytes>` (standard
    or URL-safe alphabet)."""
    kid, sep, encoded = text.strip().partition(":")
    if not sep or not _KID.fullmatch(kid) or not _B64.fullmatch(encoded):
        raise KeyFormatError("expected <key id>:<base64 of 32 bytes>")
    standard = encoded.rstrip("=").replace("-", "+").replace("_", "/") + "="
    try:
        key = base64.b64decode(standard, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFormatError("expected <key id>:<base64 of 32 bytes>") from None
    if len(key) != KEY_BYTES:
        raise KeyFormatError("expected <key id>:<base64 of 32 bytes>")
    return kid, key


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def wire_subject(subject: str) -> str:
    """`subject` as the proof carries it: itself when it is 1-256 bytes of printable text, else
    `hash:` and its SHA-256 (so one subject still counts as one, whatever its form)."""
    raw = subject.encode("utf-8", "surrogatepass")
    if 0 < len(raw) <= MAX_SUBJECT_BYTES and subject.isprintable():
        return subject
    return "hash:" + hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class ProofSigner:
    """Makes `X-Outpost-Caller` values with one key; `clock` gives Unix time in seconds."""

    kid: str
    key: bytes = field(repr=False)
    clock: Callable[[], float] = field(repr=False, compare=False)

    @classmethod
    def from_setting(cls, value: str, clock: Callable[[], float]) -> ProofSigner | None:
        """The signer for the edge's `caller_key` setting; None when it is empty."""
        if not value:
            return None
        kid, key = parse_key(value)
        return cls(kid, key, clock)

    def header(self, method: str, target: str, request_id: str, subject: str) -> str:
        """The header value proving that this edge sends `method target` for `subject`."""
        t = str(int(self.clock()))
        sub = _b64url(wire_subject(subject).encode("utf-8"))
        lines = ("outpost-caller-" + VERSION, self.kid, t, method, target, request_id, sub)
        mac = hmac.new(self.key, "\n".join(lines).encode("utf-8"), hashlib.sha256).digest()
        return f"{VERSION}; kid={self.kid}; t={t}; sub={sub}; sig={_b64url(mac)}"
