"""Mobile apps and their API keys, kept in Vault KV (`outpost/origin/apps`).

Vault keeps an HMAC of each key (never the key), the scopes its devices may ask for, the app's
registration cap and its attestation settings. Origins read the record from their secrets
snapshot, so a change takes effect within their refresh interval (60 s by default). Every write
is check-and-set: two operators editing apps at once cannot lose each other's change.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import hvac
import hvac.exceptions

from origin.identity.attestation import MODES
from origin.identity.credentials import decode_key, hash_secret, new_api_key
from origin.identity.issuer import SCOPES

KV_MOUNT = "secret"
APPS_PATH = "outpost/origin/apps"
PEPPER_PATH = "outpost/origin/hmac"
APP_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


class AppsError(ValueError):
    """A request the apps store refuses (the message says which name or field, and why)."""


@dataclass(frozen=True)
class AppSpec:
    """What an app may do. `attested_app_ids` are the token `sub`s its attestation accepts."""

    name: str
    scope: str = " ".join(SCOPES)
    attestation: str = "off"
    attested_app_ids: tuple[str, ...] = field(default_factory=tuple)
    register_limit: int | None = None
    register_window: int | None = None

    def check(self) -> None:
        if not APP_NAME.fullmatch(self.name):
            raise AppsError(
                f"app name {self.name!r}: use 1-63 of a-z, 0-9 and '-', starting with a letter "
                "or digit"
            )
        unknown = [s for s in self.scope.split() if s not in SCOPES]
        if unknown or not self.scope.split():
            raise AppsError(f"scope {self.scope!r}: choose from {', '.join(SCOPES)}")
        if self.attestation not in MODES:
            raise AppsError(f"attestation {self.attestation!r}: choose from {', '.join(MODES)}")
        for value, name in ((self.register_limit, "limit"), (self.register_window, "window")):
            if value is not None and value < 1:
                raise AppsError(f"register {name} must be at least 1")


def _read(client: hvac.Client, path: str) -> tuple[dict[str, Any], int]:
    try:
        resp = client.secrets.kv.v2.read_secret_version(
            path=path, mount_point=KV_MOUNT, raise_on_deleted_version=True
        )
    except hvac.exceptions.InvalidPath:
        return {}, 0
    return dict(resp["data"]["data"]), int(resp["data"]["metadata"]["version"])


def _write(client: hvac.Client, apps: dict[str, Any], version: int) -> None:
    try:
        client.secrets.kv.v2.create_or_update_secret(
            path=APPS_PATH, secret=apps, cas=version, mount_point=KV_MOUNT
        )
    except hvac.exceptions.InvalidRequest:
        raise AppsError("the apps record changed while this command ran; run it again") from None


def _pepper(client: hvac.Client) -> bytes:
    data, _ = _read(client, PEPPER_PATH)
    if not isinstance(data.get("key"), str):
        raise AppsError("Vault has no HMAC key yet: run `outpost vault bootstrap` first")
    return decode_key(data["key"])


def create_app(client: hvac.Client, spec: AppSpec, *, rotate: bool = False) -> str:
    """Store a new app (or, with `rotate`, a new key for an existing one); returns the API key,
    which exists nowhere else: Vault keeps only its HMAC."""
    spec.check()
    apps, version = _read(client, APPS_PATH)
    current = apps.get(spec.name)
    active = isinstance(current, dict) and current.get("key_hmac") and not current.get("revoked_at")
    if active and not rotate:
        raise AppsError(
            f"app {spec.name!r} exists; `--rotate` gives it a new key (the old one stops working)"
        )
    api_key = new_api_key(spec.name)
    ids = list(spec.attested_app_ids) or ([spec.name] if spec.attestation != "off" else [])
    record: dict[str, Any] = {
        "key_hmac": hash_secret(_pepper(client), api_key),
        "scope": spec.scope,
        "attestation": spec.attestation,
        "attested_app_ids": ids,
        "created_at": int(time.time()),
    }
    if spec.register_limit is not None:
        record["register_limit"] = spec.register_limit
    if spec.register_window is not None:
        record["register_window"] = spec.register_window
    apps[spec.name] = record
    _write(client, apps, version)
    return api_key


def revoke_app(client: hvac.Client, name: str) -> None:
    """Stop new registrations with the app's key (its HMAC is dropped). Devices registered
    before keep refreshing until their families expire or are revoked."""
    apps, version = _read(client, APPS_PATH)
    current = apps.get(name)
    if not isinstance(current, dict):
        raise AppsError(f"no app named {name!r} (see `outpost apps list`)")
    if current.get("revoked_at"):
        return
    record = {k: v for k, v in current.items() if k != "key_hmac"}
    record["revoked_at"] = int(time.time())
    apps[name] = record
    _write(client, apps, version)


def list_apps(client: hvac.Client) -> list[dict[str, Any]]:
    """Every app's settings, never a key or its HMAC."""
    apps, _ = _read(client, APPS_PATH)
    rows = []
    for name, record in sorted(apps.items()):
        if not isinstance(record, dict):
            continue
        rows.append(
            {
                "name": name,
                "status": "revoked" if record.get("revoked_at") else "active",
                "scope": record.get("scope", ""),
                "attestation": record.get("attestation", "off"),
                "attested_app_ids": list(record.get("attested_app_ids") or []),
                "register_limit": record.get("register_limit"),
                "register_window": record.get("register_window"),
                "created_at": record.get("created_at"),
                "revoked_at": record.get("revoked_at"),
            }
        )
    return rows
