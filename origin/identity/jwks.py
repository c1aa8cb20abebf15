"""JWKS built from Vault transit's public keys, cached in memory and refreshed in the background."""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from origin.secrets.client import VaultClient
from origin.secrets.snapshot import describe_error

log = logging.getLogger("outpost.origin.jwks")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def kid_for(key_name: str, version: int) -> str:
    """`kid` of a transit key version, e.g. `outpost-jwt-v3`."""
    return f"{key_name}-v{version}"


def jwks_from_transit(key_name: str, key_data: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7517 JWK set (OKP/Ed25519) for every key version transit still accepts."""
    if key_data.get("type") != "ed25519":
        raise ValueError(f"transit key {key_name} is {key_data.get('type')}, expected ed25519")
    min_version = int(key_data.get("min_decryption_version") or 1)
    keys = []
    for version_str, entry in sorted(key_data.get("keys", {}).items(), key=lambda kv: int(kv[0])):
        version = int(version_str)
        if version < min_version or not isinstance(entry, Mapping):
            continue
        raw = base64.b64decode(entry["public_key"])
        keys.append(
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "x": b64url(raw),
                "kid": kid_for(key_name, version),
                "alg": "EdDSA",
                "use": "sig",
            }
        )
    return {"keys": keys}


@dataclass(frozen=True)
class JwksState:
    document: dict[str, Any]
    latest_version: int


class JwksCache:
    """Last good JWKS document plus the transit key's latest version (the one to sign with)."""

    def __init__(self, client: VaultClient) -> None:
        self._client = client
        self._state: JwksState | None = None
        self._reason: str | None = "jwks not loaded yet"
        self._lock = threading.Lock()

    @property
    def key_name(self) -> str:
        return self._client.settings.transit_key

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
        data = self._client.read_transit_key()
        state = JwksState(
            document=jwks_from_transit(self.key_name, data),
            latest_version=int(data["latest_version"]),
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
