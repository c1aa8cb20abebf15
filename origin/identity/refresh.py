"""Refresh tokens: rotation on every use, reuse detection that revokes the whole family.

A refresh token is `ort.<family>.<generation>.<mac>`, where mac = HMAC(refresh key from Vault KV,
"<family>.<generation>"). The MAC makes tokens unforgeable without storing them; the only shared
state is one small KV v2 record per family (`<state_prefix>/refresh/<family>`: subject, scope,
current generation, revoked flag, expiry), updated with check-and-set so concurrent replicas can't
both rotate the same token. Presenting an authentic token whose generation is older than the
current one means it was used before: the family is revoked (RFC 9700 section 4.14.2).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass

import hvac.exceptions

from origin.identity.jwks import b64url
from origin.secrets.client import VaultClient

log = logging.getLogger("outpost.origin.refresh")

PREFIX = "ort"


class InvalidRefreshToken(Exception):
    """Unknown, forged, expired, revoked or reused refresh token (OAuth `invalid_grant`)."""


@dataclass(frozen=True)
class RefreshGrant:
    subject: str
    client_id: str
    scope: tuple[str, ...]
    token: str


def _mac(key: bytes, family: str, generation: int) -> str:
    return b64url(hmac.new(key, f"{family}.{generation}".encode(), hashlib.sha256).digest())


def _parse(token: str) -> tuple[str, int, str] | None:
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != PREFIX or not parts[2].isdigit():
        return None
    return parts[1], int(parts[2]), parts[3]


def family_tag(family: str) -> str:
    """Loggable stand-in for a family id (the id itself is part of a bearer token)."""
    return hashlib.sha256(family.encode()).hexdigest()[:12]


class RefreshTokenStore:
    """Issues and rotates refresh tokens; all methods block on Vault (run them in a thread)."""

    def __init__(self, client: VaultClient, ttl: int) -> None:
        self._client = client
        self._ttl = ttl

    def _path(self, family: str) -> str:
        return f"{self._client.settings.state_prefix}/refresh/{family}"

    def start_family(self, key: bytes, subject: str, client_id: str, scope: tuple[str, ...]) -> str:
        family = secrets.token_urlsafe(16)
        now = int(time.time())
        record = {
            "sub": subject,
            "client_id": client_id,
            "scope": " ".join(scope),
            "generation": 1,
            "revoked": False,
            "created_at": now,
            "expires_at": now + self._ttl,
        }
        self._client.write_kv(self._path(family), record, cas=0)
        return f"{PREFIX}.{family}.1.{_mac(key, family, 1)}"

    def rotate(self, key: bytes, token: str) -> RefreshGrant:
        """Exchange `token` for the next one in its family, or raise InvalidRefreshToken."""
        parsed = _parse(token)
        if parsed is None:
            raise InvalidRefreshToken("malformed refresh token")
        family, generation, mac = parsed
        if not hmac.compare_digest(_mac(key, family, generation), mac):
            raise InvalidRefreshToken("refresh token is not valid")
        found = self._client.read_kv(self._path(family))
        if found is None:
            raise InvalidRefreshToken("refresh token is not valid")
        record, version = found
        if record.get("revoked"):
            raise InvalidRefreshToken("refresh token was revoked")
        if int(record.get("expires_at", 0)) <= time.time():
            raise InvalidRefreshToken("refresh token expired")
        current = int(record.get("generation", 0))
        if generation != current:
            self._revoke(family, record, version)
            raise InvalidRefreshToken("refresh token was already used; its family is revoked")
        nxt = dict(record, generation=current + 1, expires_at=int(time.time()) + self._ttl)
        try:
            self._client.write_kv(self._path(family), nxt, cas=version)
        except hvac.exceptions.InvalidRequest:
            # Another replica rotated this very token first: that is a reuse as well.
            latest = self._client.read_kv(self._path(family))
            if latest is not None:
                self._revoke(family, latest[0], latest[1])
            raise InvalidRefreshToken(
                "refresh token was already used; its family is revoked"
            ) from None
        return RefreshGrant(
            subject=str(record["sub"]),
            client_id=str(record["client_id"]),
            scope=tuple(str(record.get("scope", "")).split()),
            token=f"{PREFIX}.{family}.{current + 1}.{_mac(key, family, current + 1)}",
        )

    def _revoke(self, family: str, record: dict, version: int) -> None:
        log.warning("refresh token reuse detected: revoking family %s", family_tag(family))
        for _ in range(3):
            try:
                self._client.write_kv(self._path(family), dict(record, revoked=True), cas=version)
                return
            except hvac.exceptions.InvalidRequest:
                found = self._client.read_kv(self._path(family))
                if found is None:
                    return
                record, version = found
