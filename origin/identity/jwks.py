"""JWKS built from Vault transit's public keys, cached in memory and refreshed in the background."""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from origin.secrets.client import VaultClient
from origin.secrets.snapshot import describe_error

log = logging.getLogger("outpost.origin.jwks")

# Transit key type -> the JWS algorithm its signatures make.
JWS_ALGORITHMS = {"ed25519": "EdDSA", "rsa-2048": "RS256", "rsa-3072": "RS256", "rsa-4096": "RS256"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def kid_for(key_name: str, version: int) -> str:
    """`kid` of a transit key version, e.g. `outpost-jwt-v3`."""
    return f"{key_name}-v{version}"


def _public_jwk(key_type: str, public_key: str) -> dict[str, Any]:
    """The JWK of one transit key version's public half (ed25519: raw base64; rsa: PEM)."""
    if key_type == "ed25519":
        raw = base64.b64decode(public_key)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw), "alg": "EdDSA"}
    numbers = serialization.load_pem_public_key(public_key.encode()).public_numbers()
    assert isinstance(numbers, rsa.RSAPublicNumbers)

    def big(n: int) -> str:
        return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))

    return {"kty": "RSA", "n": big(numbers.n), "e": big(numbers.e), "alg": "RS256"}


def jwks_from_transit(key_name: str, key_data: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7517 JWK set for every key version transit still accepts (ed25519 -> EdDSA keys;
    rsa-2048/3072/4096 -> RS256 keys)."""
    key_type = str(key_data.get("type"))
    if key_type not in JWS_ALGORITHMS:
        raise ValueError(f"transit key {key_name} is {key_type}, expected ed25519 or rsa")
    min_version = int(key_data.get("min_decryption_version") or 1)
    keys = []
    for version_str, entry in sorted(key_data.get("keys", {}).items(), key=lambda kv: int(kv[0])):
        version = int(version_str)
        if version < min_version or not isinstance(entry, Mapping):
            continue
        jwk = _public_jwk(key_type, entry["public_key"])
        keys.append({**jwk, "kid": kid_for(key_name, version), "use": "sig"})
    return {"keys": keys}


@dataclass(frozen=True)
class JwksState:
    document: dict[str, Any]
    latest_version: int
    alg: str = "EdDSA"


class JwksCache:
    """Last good JWKS document plus the transit key's latest version (the one to sign with)."""

    def __init__(self, client: VaultClient, key_name: str | None = None) -> None:
        self._client = client
        self._key_name = key_name or client.settings.transit_key
        self._state: JwksState | None = None
        self._reason: str | None = "jwks not loaded yet"
        self._lock = threading.Lock()

    @property
    def key_name(self) -> str:
        return self._key_name

    @property
    def state(self) -> JwksState | None:
        return self._state

    @property
    def reason(self) -> str | None:
        return self._reason

    def document(self) -> dict[str, Any] | None:
        state = self._state
        return state.document if state else None

    def load(self) -> JwksState:
        """Read the transit key (blocking) and swap the cached document in."""
        data = self._client.read_transit_key(self._key_name)
        state = JwksState(
            document=jwks_from_transit(self.key_name, data),
            latest_version=int(data["latest_version"]),
            alg=JWS_ALGORITHMS[str(data.get("type"))],
        )
        with self._lock:
            old = self._state
            self._state = state
            self._reason = None
        if old is None or old.latest_version != state.latest_version:
            log.info("jwks loaded: %s latest version %d", self.key_name, state.latest_version)
        return state

    def try_load(self) -> bool:
        try:
            self.load()
        except Exception as exc:  # keep serving the last good JWKS
            reason = describe_error(exc)
            if reason != self._reason:
                log.warning("jwks refresh failed, keeping last good copy: %s", reason)
            self._reason = reason
            return False
        return True
