"""A device in Python: the key pair an app keeps, and the DPoP proofs it signs (RFC 9449).

What the Kotlin and Swift clients of docs/mobile.md do on a phone, for scripts, tests and
benchmarks: generate a P-256 key, register with the app's API key, call the edge with
`Authorization: DPoP <token>` and a fresh proof per request.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from origin.identity.dpop import jwk_thumbprint
from origin.identity.issuer import GRANT_DEVICE
from origin.identity.jwks import b64url


class DeviceKey:
    """A P-256 key pair (ES256), as the Secure Enclave or Android Keystore would hold it."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey | None = None) -> None:
        self.private_key = private_key or ec.generate_private_key(ec.SECP256R1())
        numbers = self.private_key.public_key().public_numbers()
        self.jwk: dict[str, Any] = {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
        }
        self.jkt = jwk_thumbprint(self.jwk)  # the device id

    def proof(
        self,
        method: str,
        url: str,
        access_token: str | None = None,
        *,
        iat: float | None = None,
        jti: str | None = None,
        **extra: Any,
    ) -> str:
        """A DPoP proof for one request (`url` without query or fragment)."""
        claims: dict[str, Any] = {
            "jti": jti or uuid.uuid4().hex,
            "htm": method,
            "htu": url,
            "iat": int(time.time() if iat is None else iat),
            **extra,
        }
        if access_token is not None:
            digest = hashlib.sha256(access_token.encode("ascii")).digest()
            claims["ath"] = b64url(digest)
        header = {"typ": "dpop+jwt", "jwk": self.jwk}
        return jwt.encode(claims, self.private_key, algorithm="ES256", headers=header)


def register(
    client: httpx.Client,
    token_url: str,
    api_key: str,
    key: DeviceKey,
    *,
    scope: str | None = None,
    attestation: str | None = None,
    headers: dict[str, str] | None = None,
    htu: str | None = None,
) -> httpx.Response:
    """The device-registration grant, with a proof for `htu` (default: `token_url`, the URL the
    app calls; the issuer's `token_endpoint` when the call goes around the edge)."""
    form = {"grant_type": GRANT_DEVICE, "api_key": api_key}
    if scope:
        form["scope"] = scope
    sent = {"DPoP": key.proof("POST", htu or token_url), **(headers or {})}
    if attestation is not None:
        sent["X-Firebase-AppCheck"] = attestation
    return client.post(token_url, data=form, headers=sent)


def refresh(
    client: httpx.Client,
    token_url: str,
    refresh_token: str,
    key: DeviceKey,
    *,
    htu: str | None = None,
) -> httpx.Response:
    """The refresh_token grant, proven with the device key."""
    return client.post(
        token_url,
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        headers={"DPoP": key.proof("POST", htu or token_url)},
    )


def auth_headers(key: DeviceKey, method: str, url: str, access_token: str) -> dict[str, str]:
    """`Authorization: DPoP` and the proof for one resource request."""
    return {
        "Authorization": f"DPoP {access_token}",
        "DPoP": key.proof(method, url.split("?", 1)[0], access_token),
    }


def decode_unverified(token: str) -> dict[str, Any]:
    """A JWT's claims, unverified (for looking, never for trusting)."""
    return json.loads(jwt.utils.base64url_decode(token.split(".")[1]))
