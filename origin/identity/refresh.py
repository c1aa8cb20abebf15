"""Refresh tokens: bound to the device key, rotated on every use, purged once dead.

A refresh token is `ort.<family>.<generation>.<mac>`, where mac = HMAC(refresh key from Vault KV,
"<family>.<generation>"). The MAC makes tokens unforgeable without storing them; the only shared
state is one small KV v2 record per family (`<state_prefix>/refresh/<shard>/<family>`, the shard
being the family id's first character: subject, scope, the device key's thumbprint `jkt`, current
generation, expiry), updated with check-and-set so concurrent replicas can't both rotate the
same token.

- Only the device key opens the family: a refresh must come with a proof from the key whose
  thumbprint the family holds (RFC 9449 section 5); without it the token is refused and the
  family left alone, so a stolen refresh token is worth nothing.
- Presenting an authentic, key-proven token whose generation is older than the current one means
  it was used before: the family is deleted (RFC 9700 section 4.14.2), and its storage with it.
- Expired families are deleted by `purge_shard`, run in the background one shard at a time, so
  Vault's storage follows the number of live devices, not the number of registrations ever made.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass

import hvac.exceptions

from origin import strict
from origin.identity.jwks import b64url
from origin.secrets.client import VaultClient

log = logging.getLogger("outpost.origin.refresh")

PREFIX = "ort"
# Family ids are base64url: their first character spreads them over 64 shards.
SHARDS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_REUSED = "refresh token was already used; its family is revoked"


class InvalidRefreshToken(Exception):
    """Unknown, forged, expired, revoked, reused or wrong-key refresh token (`invalid_grant`)."""


@dataclass(frozen=True)
class RefreshGrant:
    subject: str
    client_id: str
    scope: tuple[str, ...]
    token: str
    jkt: str


@dataclass(frozen=True)
class PurgeResult:
    checked: int = 0
    deleted: int = 0


def _mac(key: bytes, family: str, generation: int) -> str:
    return b64url(hmac.new(key, f"{family}.{generation}".encode(), hashlib.sha256).digest())


def _parse(token: str) -> tuple[str, int, str] | None:
    """(family, generation, mac) of a token shaped as this issuer makes them
    (`origin.strict.REFRESH_TOKEN`), else None."""
    m = strict.REFRESH_TOKEN.fullmatch(token)
    return (m[1], int(m[2]), m[3]) if m else None


def family_tag(family: str) -> str:
    """Loggable stand-in for a family id (the id itself is part of a bearer token)."""
    return hashlib.sha256(family.encode()).hexdigest()[:12]


class RefreshTokenStore:
    """Issues, rotates and purges refresh tokens; all methods block on Vault (use a thread)."""

    def __init__(self, client: VaultClient, ttl: int) -> None:
        self._client = client
        self._ttl = ttl

    @property
    def root(self) -> str:
        return f"{self._client.settings.state_prefix}/refresh"

    def _path(self, family: str) -> str:
        return f"{self.root}/{family[0]}/{family}"

    def start_family(
        self, key: bytes, subject: str, client_id: str, scope: tuple[str, ...], jkt: str
    ) -> str:
        family = secrets.token_urlsafe(16)
        now = int(time.time())
        record = {
            "sub": subject,
            "client_id": client_id,
            "scope": " ".join(scope),
            "jkt": jkt,
            "generation": 1,
            "created_at": now,
            "expires_at": now + self._ttl,
        }
        self._client.write_kv(self._path(family), record, cas=0)
        return f"{PREFIX}.{family}.1.{_mac(key, family, 1)}"

    @staticmethod
    def authenticate(key: bytes, token: str) -> tuple[str, int]:
        """(family, generation) of a token this issuer made (no Vault call); raises
        InvalidRefreshToken for anything else."""
        parsed = _parse(token)
        if parsed is None:
            raise InvalidRefreshToken("malformed refresh token")
        family, generation, mac = parsed
        if not hmac.compare_digest(_mac(key, family, generation), mac):
            raise InvalidRefreshToken("refresh token is not valid")
        return family, generation

    def rotate(self, key: bytes, token: str, jkt: str) -> RefreshGrant:
        """Exchange `token`, presented with a proof from key `jkt`, for the next one in its
        family; raise InvalidRefreshToken."""
        family, generation = self.authenticate(key, token)
        found = self._client.read_kv(self._path(family))
        if found is None:
            raise InvalidRefreshToken("refresh token is not valid (expired, revoked or unknown)")
        record, version = found
        if not hmac.compare_digest(str(record.get("jkt", "")), jkt):
            raise InvalidRefreshToken("refresh token is bound to another device key")
        if int(record.get("expires_at", 0)) <= time.time():
            raise InvalidRefreshToken("refresh token expired")
        current = int(record.get("generation", 0))
        if generation != current:
            self._revoke(family)
            raise InvalidRefreshToken(_REUSED)
        nxt = dict(record, generation=current + 1, expires_at=int(time.time()) + self._ttl)
        try:
            self._client.write_kv(self._path(family), nxt, cas=version)
        except hvac.exceptions.InvalidRequest:
            # Another replica rotated this very token first: that is a reuse as well.
            self._revoke(family)
            raise InvalidRefreshToken(_REUSED) from None
        return RefreshGrant(
            subject=str(record["sub"]),
            client_id=str(record["client_id"]),
            scope=tuple(str(record.get("scope", "")).split()),
            token=f"{PREFIX}.{family}.{current + 1}.{_mac(key, family, current + 1)}",
            jkt=jkt,
        )

    def _revoke(self, family: str) -> None:
        """Reuse detected: delete the family, so every token of it is refused from now on."""
        log.warning("refresh token reuse detected: revoking family %s", family_tag(family))
        self._client.delete_kv(self._path(family))

    def purge_shard(self, shard: str, now: float | None = None) -> PurgeResult:
        """Delete the expired families of one shard (`""`: families stored before shards and
        device keys existed, all unusable now). Blocking; raises what Vault raises."""
        now = time.time() if now is None else now
        folder = f"{self.root}/{shard}" if shard else self.root
        checked = deleted = 0
        for name in self._client.list_kv(folder):
            path = f"{folder}/{name}"
            checked += 1
            found = self._client.read_kv(path) if shard else None
            if found is None or int(found[0].get("expires_at", 0)) <= now:
                self._client.delete_kv(path)
                deleted += 1
        return PurgeResult(checked, deleted)


class RefreshPurger:
    """Sweeps the families shard by shard, one shard per call (the secrets loop's job)."""

    def __init__(self, store: RefreshTokenStore) -> None:
        self._store = store
        self._order = ["", *SHARDS]
        self._next = secrets.randbelow(len(self._order))  # replicas start apart
        self.deleted = 0

    def step(self, now: float | None = None) -> PurgeResult:
        shard = self._order[self._next]
        result = self._store.purge_shard(shard, now)
        self._next = (self._next + 1) % len(self._order)
        self.deleted += result.deleted
        if result.deleted:
            log.info("purged %d expired refresh-token families", result.deleted)
        return result

    def sweep(self, now: float | None = None) -> PurgeResult:
        """Every shard once (tools and tests; the background job goes one step at a time)."""
        checked = deleted = 0
        for _ in self._order:
            r = self.step(now)
            checked, deleted = checked + r.checked, deleted + r.deleted
        return PurgeResult(checked, deleted)
