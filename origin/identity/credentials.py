"""API keys and client secrets: stored only as keyed HMACs, compared in constant time.

The HMAC key (the "pepper") lives in Vault KV, so a leaked copy of the stored HMACs alone does not
allow an offline guessing attack. API keys are self-identifying (`opk.<app_id>.<random>`) so the
verifier finds the stored HMAC without scanning.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from origin import strict

API_KEY_PREFIX = "opk"


def hash_secret(pepper: bytes, value: str) -> str:
    """HMAC-SHA256 of `value` under `pepper`, hex encoded (what Vault KV stores)."""
    return hmac.new(pepper, value.encode("utf-8"), hashlib.sha256).hexdigest()


def matches(pepper: bytes, value: str, stored_hmac: str) -> bool:
    """Constant-time check that `value` hashes to `stored_hmac`."""
    return hmac.compare_digest(hash_secret(pepper, value), stored_hmac)


def decode_key(b64: str) -> bytes:
    """Keys in KV are standard base64 text."""
    return base64.b64decode(b64)


def new_key_b64(nbytes: int = 32) -> str:
    return base64.b64encode(secrets.token_bytes(nbytes)).decode()


def new_api_key(app_id: str) -> str:
    """A fresh app API key; the app id is readable, the rest is 256 random bits."""
    return f"{API_KEY_PREFIX}.{app_id}.{secrets.token_urlsafe(32)}"


def parse_api_key(api_key: str) -> str | None:
    """The app id named by an API key, or None when it is not shaped like one
    (`origin.strict.API_KEY`)."""
    m = strict.API_KEY.fullmatch(api_key)
    return m[1] if m else None


@dataclass(frozen=True)
class Principal:
    """Who a verified credential belongs to, and what it may ask for."""

    subject: str
    client_id: str
    scope: tuple[str, ...]


def _scope(record: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(record.get("scope", "")).split())


def verify_client(
    pepper: bytes, clients: Mapping[str, Any], client_id: str, client_secret: str
) -> Principal | None:
    """A service client (client_credentials grant); None when unknown or the secret is wrong."""
    record = clients.get(client_id)
    if not isinstance(record, Mapping) or not isinstance(record.get("secret_hmac"), str):
        # Still spend the HMAC so unknown ids and wrong secrets take the same time.
        hash_secret(pepper, client_secret)
        return None
    if not matches(pepper, client_secret, record["secret_hmac"]):
        return None
    return Principal(subject=f"client:{client_id}", client_id=client_id, scope=_scope(record))


def verify_api_key(pepper: bytes, apps: Mapping[str, Any], api_key: str) -> Principal | None:
    """A mobile app's API key (device registration grant); None when unknown, revoked or wrong."""
    app_id = parse_api_key(api_key)
    record = apps.get(app_id) if app_id else None
    if (
        not isinstance(record, Mapping)
        or not isinstance(record.get("key_hmac"), str)
        or record.get("revoked_at")
    ):
        hash_secret(pepper, api_key)
        return None
    if not matches(pepper, api_key, record["key_hmac"]):
        return None
    assert app_id is not None
    return Principal(subject=f"app:{app_id}", client_id=app_id, scope=_scope(record))
