"""Is Outpost's own Vault setup healthy? The checks behind `outpost vault status`.

Read-only, through the admin AppRole of the local state dir: the server answers and is unsealed,
the engines are mounted, both policies exist and match `vault/policies/*.hcl`, the origin's
AppRole is as the bootstrap made it and its secret_id is still valid, the signing key is an
unexportable ed25519 key (with its last rotation), and the origin's KV secrets exist. It shows
names, times and versions, never a secret value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import requests

from vault.bootstrap import KV_MOUNT, ORIGIN_KV_PREFIX, ORIGIN_ROLE, TRANSIT_KEY, admin_client
from vault.server import ADMIN_POLICY, ORIGIN_POLICY, POLICY_DIR, StatePaths

KV_SECRETS = ("hmac", "refresh", "apps", "clients", "caller")


@dataclass(frozen=True)
class Check:
    """One line of the status: what was checked, whether it is as Outpost needs, and details."""

    name: str
    ok: bool
    detail: str


def _parse_time(iso: str) -> datetime:
    """Vault's RFC 3339 times (nanoseconds, `Z`) as aware datetimes."""
    text = iso.rstrip("Z")
    if "." in text:
        whole, fraction = text.split(".", 1)
        text = f"{whole}.{fraction[:6]}"
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _age(iso: str, now: datetime) -> str:
    seconds = int((now - _parse_time(iso)).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{max(seconds, 0)} s ago"


def _normalise(hcl: str) -> str:
    return "\n".join(line.strip() for line in hcl.splitlines() if line.strip())


def _health(addr: str, timeout: float) -> Check:
    client = hvac.Client(url=addr, timeout=timeout)
    try:
        health = client.sys.read_health_status(method="GET")
    except requests.exceptions.RequestException as exc:
        return Check("server", False, f"{addr} unreachable ({type(exc).__name__})")
    if not isinstance(health, dict):  # hvac returns the response for non-200 answers
        try:
            health = health.json()
        except ValueError:
            return Check("server", False, f"{addr} answered {health.status_code}")
    ok = bool(health.get("initialized")) and not health.get("sealed")
    state = (
        "initialised, unsealed" if ok else ("sealed" if health.get("sealed") else "not initialised")
    )
    return Check("server", ok, f"{addr}: {state}, version {health.get('version', '?')}")


def _mounts(client: hvac.Client) -> Check:
    engines = client.sys.list_mounted_secrets_engines()["data"]
    auths = client.sys.list_auth_methods()["data"]
    missing = [m for m in (f"{KV_MOUNT}/", "transit/") if m not in engines]
    missing += ["auth approle/"] if "approle/" not in auths else []
    kv_version = (engines.get(f"{KV_MOUNT}/", {}).get("options") or {}).get("version")
    if not missing and kv_version != "2":
        missing.append(f"{KV_MOUNT}/ is not KV v2")
    return Check(
        "mounts",
        not missing,
        "missing: " + ", ".join(missing) if missing else f"{KV_MOUNT}/ (kv v2), transit/, approle/",
    )


def _policy(client: hvac.Client, name: str, file: str) -> Check:
    try:
        policy = client.sys.read_acl_policy(name)["data"]["policy"]
    except hvac.exceptions.InvalidPath:
        return Check(f"policy {name}", False, "missing (run `outpost vault bootstrap`)")
    same = _normalise(policy) == _normalise((POLICY_DIR / file).read_text())
    return Check(
        f"policy {name}",
        same,
        f"matches vault/policies/{file}"
        if same
        else f"differs from vault/policies/{file} (run `outpost vault bootstrap`)",
    )


def _role(client: hvac.Client, paths: StatePaths, now: datetime) -> list[Check]:
    try:
        role = client.auth.approle.read_role(ORIGIN_ROLE)["data"]
    except hvac.exceptions.InvalidPath:
        return [Check(f"approle {ORIGIN_ROLE}", False, "missing (run `outpost vault bootstrap`)")]
    problems = []
    if role.get("token_policies") != [ORIGIN_POLICY]:
        problems.append(f"policies {role.get('token_policies')} (want [{ORIGIN_POLICY}])")
    if not role.get("token_no_default_policy"):
        problems.append("grants the default policy")
    if not role.get("bind_secret_id"):
        problems.append("does not require a secret_id")
    detail = (
        "; ".join(problems)
        if problems
        else f"policy {ORIGIN_POLICY} only; token TTL {role.get('token_ttl')} s, "
        f"max {role.get('token_max_ttl')} s"
    )
    checks = [Check(f"approle {ORIGIN_ROLE}", not problems, detail)]
    try:
        secret_id = json.loads(paths.origin_approle.read_text())["secret_id"]
    except (OSError, ValueError, KeyError):
        checks.append(Check("origin secret_id", False, f"{paths.origin_approle} missing"))
        return checks
    try:
        info = client.auth.approle.read_secret_id(ORIGIN_ROLE, secret_id)
    except hvac.exceptions.InvalidRequest:
        info = None
    data = (info or {}).get("data") if isinstance(info, dict) else None
    if not data:
        checks.append(
            Check("origin secret_id", False, "not valid (expired or revoked): restart the stack")
        )
        return checks
    expires = data.get("expiration_time") or ""
    left = ""
    if expires and not expires.startswith("0001"):
        left = f", expires in {max(0, (_parse_time(expires) - now).days)} d"
    checks.append(Check("origin secret_id", True, f"valid{left}"))
    return checks


def _transit_key(client: hvac.Client, now: datetime) -> Check:
    try:
        key = client.secrets.transit.read_key(TRANSIT_KEY)["data"]
    except hvac.exceptions.InvalidPath:
        return Check(f"transit key {TRANSIT_KEY}", False, "missing (run `outpost vault bootstrap`)")
    problems = []
    if key.get("type") != "ed25519":
        problems.append(f"type {key.get('type')} (want ed25519)")
    if key.get("exportable"):
        problems.append("exportable: the private key can leave Vault")
    latest = key.get("latest_version")
    created = (key.get("keys", {}).get(str(latest)) or {}).get("creation_time")
    rotated = f"last rotation {_age(created, now)} ({created[:19]}Z)" if created else ""
    period = key.get("auto_rotate_period") or 0
    detail = (
        f"ed25519, not exportable, version {latest} (min {key.get('min_decryption_version')}), "
        f"{rotated}, auto-rotate {'every ' + str(period) + ' s' if period else 'off'}"
    )
    return Check(
        f"transit key {TRANSIT_KEY}", not problems, "; ".join(problems) if problems else detail
    )


def _kv(client: hvac.Client, now: datetime) -> Check:
    missing, updated = [], []
    for name in KV_SECRETS:
        try:
            meta = client.secrets.kv.v2.read_secret_metadata(
                f"{ORIGIN_KV_PREFIX}/{name}", mount_point=KV_MOUNT
            )["data"]
        except hvac.exceptions.InvalidPath:
            missing.append(name)
            continue
        updated.append(f"{name} v{meta.get('current_version')}")
    if missing:
        return Check(
            f"kv {ORIGIN_KV_PREFIX}/",
            False,
            f"missing: {', '.join(missing)} (run `outpost vault bootstrap`)",
        )
    return Check(f"kv {ORIGIN_KV_PREFIX}/", True, ", ".join(updated))


def outpost_status(addr: str, state_dir: Path, *, timeout: float = 3.0) -> list[Check]:
    """Every check, in order; stops after the first one that makes the rest impossible."""
    now = datetime.now(UTC)
    checks = [_health(addr, timeout)]
    if not checks[0].ok:
        return checks
    paths = StatePaths(Path(state_dir).resolve())
    try:
        client = admin_client(addr, paths, timeout=timeout)
    except FileNotFoundError:
        checks.append(Check("admin login", False, f"{paths.admin_secret_id} missing"))
        return checks
    except (hvac.exceptions.VaultError, requests.exceptions.RequestException) as exc:
        checks.append(Check("admin login", False, f"AppRole outpost-admin: {type(exc).__name__}"))
        return checks
    checks.append(Check("admin login", True, f"AppRole outpost-admin ({paths.root})"))
    checks.append(_mounts(client))
    checks.append(_policy(client, ORIGIN_POLICY, "origin.hcl"))
    checks.append(_policy(client, ADMIN_POLICY, "admin.hcl"))
    checks.extend(_role(client, paths, now))
    checks.append(_transit_key(client, now))
    checks.append(_kv(client, now))
    return checks


def as_rows(checks: list[Check]) -> list[dict[str, Any]]:
    """Checks as JSON-ready rows."""
    return [{"check": c.name, "ok": c.ok, "detail": c.detail} for c in checks]
