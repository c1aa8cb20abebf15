"""Synchronous Vault client for the origin: AppRole login, renewal, re-login, short timeouts.

hvac is synchronous; async callers must use `asyncio.to_thread`. All methods are thread-safe.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import hvac
import hvac.exceptions
import requests

from origin import tracing
from origin.secrets.settings import VaultSettings

log = logging.getLogger("outpost.origin.vault")

T = TypeVar("T")

# What "Vault is unreachable or unusable right now" looks like from hvac (see ENVIRONMENT.md).
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    hvac.exceptions.VaultDown,
    hvac.exceptions.InternalServerError,
    hvac.exceptions.BadGateway,
)


class CredentialsError(RuntimeError):
    """The AppRole credentials are missing or malformed (a deployment mistake, not an outage)."""


@dataclass(frozen=True)
class AppRoleCredentials:
    role_id: str = field(repr=False)
    secret_id: str | None = field(default=None, repr=False)
    wrapped_secret_id: str | None = field(default=None, repr=False)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise CredentialsError(f"cannot read {path}: {exc.strerror}") from None


def load_credentials(settings: VaultSettings) -> AppRoleCredentials:
    """Read role_id and (wrapped) secret_id from the files the settings point at."""
    role_id = secret_id = wrapped = None
    if settings.approle_file is not None:
        try:
            data = json.loads(_read(settings.approle_file))
        except ValueError:
            raise CredentialsError(f"{settings.approle_file} is not JSON") from None
        if not isinstance(data, dict):
            raise CredentialsError(f"{settings.approle_file} must hold a JSON object")
        role_id = data.get("role_id")
        secret_id = data.get("secret_id")
        wrapped = data.get("wrapped_secret_id")
    if settings.role_id_file is not None:
        role_id = _read(settings.role_id_file)
    if settings.secret_id_file is not None:
        secret_id = _read(settings.secret_id_file)
    if settings.wrapped_secret_id_file is not None:
        wrapped = _read(settings.wrapped_secret_id_file)
    if not role_id or not (secret_id or wrapped):
        raise CredentialsError(
            "no AppRole credentials: set OUTPOST_VAULT_APPROLE_FILE or OUTPOST_VAULT_ROLE_ID_FILE "
            "plus OUTPOST_VAULT_SECRET_ID_FILE / OUTPOST_VAULT_WRAPPED_SECRET_ID_FILE"
        )
    return AppRoleCredentials(str(role_id), secret_id and str(secret_id), wrapped and str(wrapped))


@dataclass
class TokenState:
    """The current Vault token's schedule (monotonic seconds)."""

    accessor: str
    ttl: float
    renewable: bool
    obtained_at: float
    expires_at: float
    renew_at: float
    logins: int = 0
    renewals: int = 0


class VaultClient:
    """AppRole-authenticated hvac client that keeps its token alive.

    - `login()` exchanges role_id/secret_id for a token (unwrapping a wrapped secret_id once).
    - `ensure_token()` renews at `renew_fraction` of the TTL and logs in again when the token
      expired, could not be renewed any further, or was revoked.
    - `call(fn)` runs `fn(hvac_client)` with a live token, retrying once after a fresh login when
      Vault answers Forbidden (an expired/revoked token and a policy denial look the same).
    """

    def __init__(
        self,
        settings: VaultSettings,
        credentials: AppRoleCredentials,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._credentials = credentials
        self._secret_id = credentials.secret_id
        self._clock = clock
        self._lock = threading.RLock()
        self._client = hvac.Client(url=settings.addr, timeout=settings.timeout)
        self.token: TokenState | None = None
        self._logins = 0
        self._renewals = 0

    @property
    def hvac(self) -> hvac.Client:
        return self._client

    def _unwrap_secret_id(self) -> str:
        wrapped = self._credentials.wrapped_secret_id
        assert wrapped is not None
        # Authenticate the unwrap with the wrapping token itself (it is single-use).
        unwrapper = hvac.Client(
            url=self.settings.addr, token=wrapped, timeout=self.settings.timeout
        )
        resp = unwrapper.sys.unwrap()
        secret_id = resp["data"]["secret_id"]
        log.info("unwrapped the response-wrapped AppRole secret_id")
        return str(secret_id)

    def _set_token(self, auth: dict[str, Any]) -> None:
        now = self._clock()
        ttl = float(auth.get("lease_duration") or 0)
        self.token = TokenState(
            accessor=str(auth.get("accessor", "")),
            ttl=ttl,
            renewable=bool(auth.get("renewable")),
            obtained_at=now,
            expires_at=now + ttl if ttl else float("inf"),
            renew_at=now + ttl * self.settings.renew_fraction if ttl else float("inf"),
            logins=self._logins,
            renewals=self._renewals,
        )

    def login(self) -> TokenState:
        """AppRole login; returns the new token's schedule."""
        with self._lock, tracing.child_span("vault login", {"vault.operation": "login"}):
            if self._secret_id is None:
                self._secret_id = self._unwrap_secret_id()
            resp = self._client.auth.approle.login(
                role_id=self._credentials.role_id,
                secret_id=self._secret_id,
                mount_point=self.settings.approle_mount,
                use_token=True,
            )
            self._logins += 1
            self._set_token(resp["auth"])
            assert self.token is not None
            log.info("vault login ok (token ttl %.0fs)", self.token.ttl)
            return self.token

    def renew(self) -> TokenState:
        """Renew the current token, or log in again when it cannot be extended."""
        with self._lock:
            assert self.token is not None
            before = self.token
            remaining = before.expires_at - self._clock()
            try:
                resp = self._client.auth.token.renew_self()
            except (
                hvac.exceptions.Forbidden,
                hvac.exceptions.InvalidRequest,
                hvac.exceptions.InternalServerError,  # "past the max TTL, cannot renew"
            ) as exc:
                log.info("vault token not renewable (%s); logging in again", type(exc).__name__)
                return self.login()
            auth = resp["auth"]
            new_ttl = float(auth.get("lease_duration") or 0)
            if new_ttl <= remaining + 1:
                # Capped by token_max_ttl: renewing no longer buys time, so start a new token.
                log.info("vault token reached its max TTL; logging in again")
                return self.login()
            self._renewals += 1
            self._set_token(auth)
            log.debug("vault token renewed (ttl %.0fs)", new_ttl)  # routine: every 2/3 TTL
            assert self.token is not None
            return self.token

    def ensure_token(self) -> TokenState:
        """Make sure a usable token is held: log in, renew or re-login as the schedule says."""
        with self._lock:
            now = self._clock()
            if self.token is None or now >= self.token.expires_at - 0.5:
                return self.login()
            if now >= self.token.renew_at:
                if self.token.renewable:
                    return self.renew()
                return self.login()
            return self.token

    def call(self, fn: Callable[[hvac.Client], T], operation: str = "call") -> T:
        """Run `fn` with a live token; one fresh login and retry on Forbidden.

        Inside a traced request this is a `vault <operation>` span (never with paths or data).
        """
        with tracing.child_span(f"vault {operation}", {"vault.operation": operation}):
            self.ensure_token()
            try:
                return fn(self._client)
            except hvac.exceptions.Forbidden:
                self.login()
                return fn(self._client)

    # Convenience wrappers for what the origin needs (policy allows nothing else).

    def list_kv(self, prefix: str | None = None) -> list[str]:
        path = prefix or self.settings.kv_prefix

        def run(c: hvac.Client) -> list[str]:
            try:
                resp = c.secrets.kv.v2.list_secrets(path=path, mount_point=self.settings.kv_mount)
            except hvac.exceptions.InvalidPath:
                return []
            return [k for k in resp["data"]["keys"] if not k.endswith("/")]

        return self.call(run, "kv.list")

    def read_kv(self, path: str) -> tuple[dict[str, Any], int] | None:
        """KV v2 data and version at `path` (under the mount), or None when absent/deleted."""

        def run(c: hvac.Client) -> tuple[dict[str, Any], int] | None:
            try:
                resp = c.secrets.kv.v2.read_secret_version(
                    path=path, mount_point=self.settings.kv_mount, raise_on_deleted_version=True
                )
            except hvac.exceptions.InvalidPath:
                return None
            return dict(resp["data"]["data"]), int(resp["data"]["metadata"]["version"])

        return self.call(run, "kv.read")

    def write_kv(self, path: str, data: dict[str, Any], *, cas: int) -> int:
        """Check-and-set write (`cas=0`: only if absent); returns the new version.

        Raises `hvac.exceptions.InvalidRequest` when another writer got there first.
        """

        def run(c: hvac.Client) -> int:
            resp = c.secrets.kv.v2.create_or_update_secret(
                path=path, secret=data, cas=cas, mount_point=self.settings.kv_mount
            )
            return int(resp["data"]["version"])

        return self.call(run, "kv.write")

    def delete_kv(self, path: str) -> None:
        """Delete every version and the metadata of the secret at `path` (absent: no-op)."""
        self.call(
            lambda c: c.secrets.kv.v2.delete_metadata_and_all_versions(
                path=path, mount_point=self.settings.kv_mount
            )
        )

    def read_transit_key(self, name: str | None = None) -> dict[str, Any]:
        """Public half and versions of transit key `name` (default: the JWT signing key)."""
        return self.call(
            lambda c: c.secrets.transit.read_key(
                name or self.settings.transit_key, mount_point=self.settings.transit_mount
            )["data"],
            "transit.read_key",
        )

    def sign(
        self,
        data_b64: str,
        key_version: int | None = None,
        *,
        key_name: str | None = None,
        rsa_pkcs1v15: bool = False,
    ) -> str:
        """Transit signature (`vault:v<N>:<base64>`) over base64 `data_b64`; `rsa_pkcs1v15`
        for an RSA key signing RS256 (PKCS#1 v1.5 over SHA-256)."""
        extra = {"hash_algorithm": "sha2-256", "signature_algorithm": "pkcs1v15"}
        return self.call(
            lambda c: c.secrets.transit.sign_data(
                key_name or self.settings.transit_key,
                hash_input=data_b64,
                key_version=key_version,
                mount_point=self.settings.transit_mount,
                **(extra if rsa_pkcs1v15 else {}),
            )["data"]["signature"],
            "transit.sign",
        )
