"""DPoP proofs (RFC 9449) at the token endpoint: who holds the device key.

A device registers with a proof signed by the key pair it keeps (Secure Enclave, Android
Keystore): the device id is that key's RFC 7638 thumbprint (`jkt`), so no one can register an id
whose key they do not hold. Access tokens carry `cnf.jkt`; refresh-token families remember it,
and every later token request must bring a proof from the same key.

Signatures and claims are checked with PyJWT. Proof ids are remembered per replica for the
proof's time window, so a proof is accepted once.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import jwt

from origin.identity.jwks import b64url

TYP = "dpop+jwt"
MAX_PROOF_CHARS = 4096
MAX_JTI_CHARS = 128
# alg -> (kty, crv) of the key it needs.
_KEY_TYPES = {"ES256": ("EC", "P-256"), "EdDSA": ("OKP", "Ed25519")}
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}
_PRIVATE = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class ProofError(Exception):
    """The proof is missing or invalid (OAuth `invalid_dpop_proof`); safe to show the client."""


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint of a public EC or OKP key, base64url (a device's id)."""
    members = _THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None or not all(isinstance(jwk.get(m), str) for m in members):
        raise ProofError("the proof's jwk is not an EC or OKP public key")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def normalize_url(url: str) -> str | None:
    """`scheme://host[:port]/path` compared as RFC 3986 section 6.2.2-6.2.3 says: lower-case
    scheme and host, no default port, `/` for an empty path; query and fragment dropped."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    return f"{scheme}://{netloc}{unquote(parts.path) or '/'}"


@dataclass(frozen=True)
class Proof:
    jkt: str
    jti: str


class ProofChecker:
    """Checks `DPoP` headers sent to the token endpoint (RFC 9449 section 4.3)."""

    def __init__(
        self,
        urls: Iterable[str],
        *,
        algorithms: Iterable[str] = ("ES256", "EdDSA"),
        max_age: float = 60,
        clock_skew: float = 10,
        replay_entries: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._urls = {u for u in (normalize_url(x) for x in urls) if u}
        self._algorithms = [a for a in algorithms if a in _KEY_TYPES]
        self._max_age = max_age
        self._skew = clock_skew
        self._clock = clock
        self._seen: dict[str, float] = {}
        self._max = replay_entries
        self._lock = threading.Lock()

    def check(self, proof: str | None, method: str = "POST") -> Proof:
        """The proof's key thumbprint and id, or ProofError."""
        if not proof:
            raise ProofError("a DPoP proof is required")
        if len(proof) > MAX_PROOF_CHARS or "," in proof:
            raise ProofError("send one DPoP proof of at most 4096 characters")
        try:
            header = jwt.get_unverified_header(proof)
        except jwt.InvalidTokenError:
            raise ProofError("the DPoP proof is malformed") from None
        if header.get("typ") != TYP:
            raise ProofError("the DPoP proof's typ must be dpop+jwt")
        alg, jwk = header.get("alg"), header.get("jwk")
        if alg not in self._algorithms:
            raise ProofError(f"DPoP proofs must use {' or '.join(self._algorithms)}")
        if not isinstance(jwk, dict) or _PRIVATE.intersection(jwk):
            raise ProofError("the DPoP proof's jwk must be a public key")
        if (jwk.get("kty"), jwk.get("crv")) != _KEY_TYPES[alg] or "crit" in header:
            raise ProofError("the DPoP proof's jwk does not fit its algorithm")
        jkt = jwk_thumbprint(jwk)
        now = self._clock()
        try:
            key = jwt.PyJWK(jwk, algorithm=alg)
            claims = jwt.decode(
                proof,
                key,
                algorithms=[alg],
                options={"require": ["jti", "htm", "htu", "iat"], "verify_aud": False},
                leeway=self._skew,
            )
        except (jwt.PyJWKError, jwt.InvalidTokenError, ValueError, TypeError) as exc:
            raise ProofError(f"the DPoP proof is invalid ({_why(exc)})") from None
        jti = self._check_claims(claims, method, now)
        self._remember(f"{jkt}:{jti}", float(claims["iat"]) + self._max_age + 1, now)
        return Proof(jkt, jti)

    def _check_claims(self, claims: dict[str, Any], method: str, now: float) -> str:
        jti, iat, htu = claims["jti"], claims["iat"], claims["htu"]
        if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_CHARS:
            raise ProofError("the DPoP proof needs a jti of 1-128 characters")
        if claims["htm"] != method:
            raise ProofError("the DPoP proof is for another HTTP method")
        if not isinstance(htu, str) or normalize_url(htu) not in self._urls:
            raise ProofError("the DPoP proof's htu is not this token endpoint")
        if isinstance(iat, bool) or not isinstance(iat, int | float):
            raise ProofError("the DPoP proof's iat must be a number")
        if iat < now - self._max_age:
            raise ProofError("the DPoP proof is too old (check the device clock)")
        return jti

    def _remember(self, key: str, expires: float, now: float) -> None:
        with self._lock:
            if key in self._seen:
                raise ProofError("the DPoP proof was already used")
            seen = self._seen
            while seen:
                oldest = next(iter(seen))
                if seen[oldest] > now and len(seen) < self._max:
                    break
                del seen[oldest]
            seen[key] = expires


def _why(exc: Exception) -> str:
    if isinstance(exc, jwt.InvalidSignatureError):
        return "bad signature"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "iat is in the future: check the device clock"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing claim {exc.claim}"
    return "malformed"
