"""JWS compact serialisation with the signature made by Vault transit (ed25519 -> EdDSA, and
RSA -> RS256 for the local attestation issuer).

The private key never leaves Vault: we send the JWS signing input to `transit/sign/<key>` with the
key version pinned to the one named in the header's `kid`.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from origin.identity.jwks import JwksCache, b64url, kid_for
from origin.secrets.client import VaultClient


class SigningUnavailable(RuntimeError):
    """Vault transit could not sign (unreachable, sealed, or no key loaded yet)."""


def _segment(obj: dict[str, Any]) -> str:
    return b64url(json.dumps(obj, separators=(",", ":"), sort_keys=True).encode())


class TransitJwtSigner:
    def __init__(self, client: VaultClient, jwks: JwksCache) -> None:
        self._client = client
        self._jwks = jwks

    def sign(self, claims: dict[str, Any]) -> str:
        """A compact JWT for `claims` (blocking: call it from a worker thread)."""
        state = self._jwks.state
        if state is None:
            state = self._jwks.load()
        version = state.latest_version
        header = {"alg": state.alg, "typ": "JWT", "kid": kid_for(self._jwks.key_name, version)}
        signing_input = f"{_segment(header)}.{_segment(claims)}"
        signature = self._client.sign(
            base64.b64encode(signing_input.encode()).decode(),
            key_version=version,
            key_name=self._jwks.key_name,
            rsa_pkcs1v15=state.alg == "RS256",
        )
        prefix, _, sig_b64 = signature.rpartition(":")
        if prefix != f"vault:v{version}":
            raise SigningUnavailable(f"transit signed with {prefix!r}, expected v{version}")
        return f"{signing_input}.{b64url(base64.b64decode(sig_b64))}"
