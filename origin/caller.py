"""Origins trust only their callers: the caller proof (`X-Outpost-Caller`) checked at the origin.

The edge (and any internal service holding the key) sends, on every request:

    X-Outpost-Caller: v1; kid=<key id>; t=<unix seconds>; sub=<subject>; sig=<mac>

`subject` is the base64url (unpadded) UTF-8 of whom the caller verified (`sub:<token subject>`,
`ip:<client address>`, `svc:<service>`), and `mac` the base64url (unpadded) HMAC-SHA256, under
the key named by `kid`, of these lines joined by `\\n`:

    outpost-caller-v1, kid, t, method, target (raw path and query), X-Request-ID, subject

(the edge's side is `edge/upstream/proof.py`). The keys come from Vault KV
(`secret/outpost/origin/caller`: `kid` and `key`, plus `previous_kid` and `previous_key` while a
rotation overlaps) through the secrets snapshot: nothing here calls Vault, and the last good copy
keeps working while Vault is down. A proof is accepted from `max_age` seconds in the past to
`FUTURE_SKEW` in the future; within that window it is not single-use (the edge's retries and
hedges resend it), so the hop itself must be TLS where it crosses a network.

`CallerVerifier` is an origin component (its health says when no key is loaded), the HTTP
middleware's check (`origin.middleware`) and a gRPC call check (`check_call`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from origin.problems import Problem

if TYPE_CHECKING:
    from origin.grpc.checks import CallInfo
    from origin.metrics import OriginMetrics

log = logging.getLogger("origin.caller")

HEADER = "x-outpost-caller"
SECRET_NAME = "caller"  # secret/<kv_prefix>/caller
KEY_BYTES = 32
MAX_HEADER_BYTES = 600
MAX_SUBJECT_BYTES = 256
FUTURE_SKEW = 30.0  # seconds a proof's `t` may be ahead of this origin's clock
_PROOF = re.compile(
    rb"v1; kid=([A-Za-z0-9._-]{1,64}); t=([0-9]{1,12}); sub=([A-Za-z0-9_-]{2,342}); "
    rb"sig=([A-Za-z0-9_-]{43})"
)
_KID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_KEY_B64 = re.compile(r"[A-Za-z0-9+/]{43}=")
# Reachable without a proof: probes, and public keys a verifier fetches (GET and HEAD only).
EXEMPT_PATHS = frozenset(
    {
        "/v2/health/live",
        "/v2/health/ready",
        "/.well-known/jwks.json",
        "/.well-known/openid-configuration",
        "/attestation/local/jwks.json",
    }
)
# gRPC calls reachable without a proof: the standard health service (Kubernetes' grpc probes).
EXEMPT_GRPC_PREFIX = "/grpc.health.v1.Health/"
WWW_AUTHENTICATE = 'OutpostCaller realm="outpost-origin"'

# The subject the current request was proven for (None: unproven), for code that has no request.
caller_subject: ContextVar[str | None] = ContextVar("outpost_caller_subject", default=None)


class CallerRefused(Exception):
    """The proof is missing or does not prove this request; `reason` labels the metric."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def new_key() -> tuple[str, str]:
    """A fresh (key id, standard base64 of 32 random bytes) for Vault's caller record."""
    kid = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(2)
    return kid, base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def parse_record(record: Mapping[str, Any] | None) -> dict[str, bytes]:
    """{key id: key} from Vault's caller record (current first, then previous); raises
    ValueError (never naming a value) when the record is malformed."""
    if record is None:
        return {}
    keys: dict[str, bytes] = {}
    for kid_field, key_field in (("kid", "key"), ("previous_kid", "previous_key")):
        kid, key = record.get(kid_field), record.get(key_field)
        if kid_field == "previous_kid" and not kid and not key:
            continue
        if not isinstance(kid, str) or not _KID.fullmatch(kid):
            raise ValueError(f"{kid_field} must be 1-64 of A-Z a-z 0-9 . _ -")
        if not isinstance(key, str) or not _KEY_B64.fullmatch(key):
            raise ValueError(f"{key_field} must be the base64 of {KEY_BYTES} bytes")
        keys.setdefault(kid, base64.b64decode(key))
    return keys


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def sign(key: bytes, kid: str, t: int, method: str, target: str, rid: str, subject: str) -> str:
    """A header value for an internal service calling an origin (the edge has its own, in
    `edge/upstream/proof.py`): proves `method target` with request id `rid` for `subject`
    (1-256 bytes of printable text, e.g. `svc:<service>`)."""
    sub = _b64url(subject.encode("utf-8"))
    fields = (kid, str(t), method, target, rid)
    mac = _mac(key, *(f.encode() for f in fields), sub)
    return f"v1; kid={kid}; t={t}; sub={sub.decode()}; sig={_b64url(mac).decode()}"


def _mac(key: bytes, *lines: bytes) -> bytes:
    return hmac.new(key, b"\n".join((b"outpost-caller-v1", *lines)), hashlib.sha256).digest()


def _subject(sub: bytes) -> str | None:
    """The subject a proof names: canonical base64url of 1-256 bytes of printable UTF-8."""
    try:
        raw = base64.urlsafe_b64decode(sub + b"=" * (-len(sub) % 4))
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    if _b64url(raw) != sub or not 0 < len(raw) <= MAX_SUBJECT_BYTES or not text.isprintable():
        return None
    return text


@dataclass(frozen=True)
class _Loaded:
    record: Mapping[str, Any] | None
    keys: dict[str, bytes]
    error: str | None


class CallerVerifier:
    """Checks caller proofs against the keys of Vault's caller record (`load_record` reads it
    from the secrets snapshot: memory only). With `required`, a request without a valid proof
    is refused (401 / UNAUTHENTICATED); without, a valid proof still names the subject."""

    router = None

    def __init__(
        self,
        load_record: Callable[[], Mapping[str, Any] | None],
        *,
        required: bool,
        max_age: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.required = required
        self.max_age = max_age
        self.metrics: OriginMetrics | None = None  # the app's, set by `create_app`
        self._load = load_record
        self._clock = clock
        self._loaded = _Loaded(None, {}, None)

    # -- the component: health only (the keys arrive with the secrets snapshot) ---------------
    async def start(self) -> None:
        self.keys()

    async def stop(self) -> None:
        return None

    def health(self) -> dict[str, Any]:
        keys = self.keys()
        if keys or not self.required:
            return {"ready": True, "degraded": []}
        why = self._loaded.error or "no key in Vault"
        return {"ready": False, "degraded": [f"caller proof required but {why} ({SECRET_NAME})"]}

    def keys(self) -> dict[str, bytes]:
        """The accepted keys, decoded again only when the snapshot's record changed."""
        record = self._load()
        loaded = self._loaded
        if record is loaded.record:
            return loaded.keys
        try:
            self._loaded = _Loaded(record, parse_record(record), None)
        except ValueError as exc:
            log.error("caller key record in Vault is malformed: %s", exc)
            self._loaded = _Loaded(record, {}, f"the key record is malformed: {exc}")
        return self._loaded.keys

    # -- checking ------------------------------------------------------------------------------
    @staticmethod
    def exempt(method: str, path: str) -> bool:
        """Open without a proof: health probes and public keys (GET/HEAD)."""
        return path in EXEMPT_PATHS and method in ("GET", "HEAD")

    def verify(self, value: bytes | None, method: str, target: bytes, rid: bytes) -> str:
        """The subject `value` proves `method target` (with request id `rid`, empty when none
        was sent) for; raises CallerRefused."""
        try:
            return self._verify(value, method, target, rid)
        except CallerRefused as refused:
            if self.metrics is not None:
                self.metrics.caller_refused.labels(refused.reason).inc()
            raise

    def _verify(self, value: bytes | None, method: str, target: bytes, rid: bytes) -> str:
        if not value:
            raise CallerRefused("missing", "this origin answers only proven callers (the edge)")
        m = _PROOF.fullmatch(value) if len(value) <= MAX_HEADER_BYTES else None
        if m is None:
            raise CallerRefused("malformed", "the caller proof is malformed")
        kid, t, sub, sig = m.groups()
        key = self.keys().get(kid.decode())
        if key is None:
            raise CallerRefused("unknown-key", "the caller proof names an unknown key")
        now = self._clock()
        if not now - self.max_age <= int(t) <= now + FUTURE_SKEW:
            raise CallerRefused("expired", "the caller proof is outside its time window")
        expected = _b64url(_mac(key, kid, t, method.encode(), target, rid, sub))
        if not hmac.compare_digest(expected, sig):
            raise CallerRefused("forged", "the caller proof does not match this request")
        subject = _subject(sub)
        if subject is None:
            raise CallerRefused("malformed", "the caller proof's subject is malformed")
        return subject

    @staticmethod
    def problem(refused: CallerRefused) -> Problem:
        return Problem(
            401,
            "caller-unproven",
            refused.detail,
            headers={"WWW-Authenticate": WWW_AUTHENTICATE},
        )

    # -- gRPC (origin.grpc.checks) -------------------------------------------------------------
    async def check_call(self, info: CallInfo) -> str | None:
        """The same check on a gRPC call (`POST /package.Service/Method`, as on the wire): the
        proven subject, or None; raises a 401 Problem, answered UNAUTHENTICATED, when a proof
        is required and fails."""
        if info.method.startswith(EXEMPT_GRPC_PREFIX):
            return None
        value, rid = info.metadata.get(HEADER), info.metadata.get("x-request-id", "")
        if value is None and not self.required:
            return None
        try:
            return self.verify(_bytes(value), "POST", info.method.encode(), _bytes(rid) or b"")
        except CallerRefused as refused:
            if self.required:
                raise self.problem(refused) from None
            return None


def _bytes(value: str | bytes | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return value.encode("latin-1", "replace")
