"""Idempotent bootstrap of Vault/OpenBao for Outpost, run with an admin token.

Mounts (if missing) KV v2 at `secret/`, transit and AppRole; writes the HCL policies; creates the
`outpost-origin` AppRole, the `outpost-jwt` ed25519 transit key and the `outpost-attest` RSA key
of the local attestation issuer; seeds the origin's KV secrets, the caller key among them
(`vault/caller_key.py`: what the edge proves itself to the origins with).
Every step checks before it creates, so running it again changes nothing that already works
(it never regenerates the pepper or rotates the signing key behind your back).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions

from origin.identity.credentials import (
    decode_key,
    hash_secret,
    new_api_key,
    new_key_b64,
)
from vault import caller_key
from vault.server import (
    ADMIN_POLICY,
    ADMIN_ROLE_ID,
    ORIGIN_POLICY,
    POLICY_DIR,
    StatePaths,
    ensure_state,
    write_private,
)

log = logging.getLogger("outpost.vault.bootstrap")

ORIGIN_ROLE = "outpost-origin"
TRANSIT_KEY = "outpost-jwt"
# The local attestation issuer's key (RS256, the algorithm App Check tokens use).
ATTEST_TRANSIT_KEY = "outpost-attest"
KV_MOUNT = "secret"
ORIGIN_KV_PREFIX = "outpost/origin"
DEMO_APP = "demo-app"
DEMO_CLIENT = "demo-service"
DEFAULT_SCOPE = "inference models:read"


@dataclass(frozen=True)
class OriginRoleSpec:
    """Token and secret_id lifetimes for the origin's AppRole."""

    token_ttl: str = "1h"
    token_max_ttl: str = "24h"
    secret_id_ttl: str = "720h"


@dataclass
class BootstrapResult:
    """What the bootstrap produced; secret fields are hidden from repr."""

    role_id: str
    secret_id: str = field(repr=False)
    demo_api_key: str | None = field(default=None, repr=False)
    demo_client_secret: str | None = field(default=None, repr=False)
    created: list[str] = field(default_factory=list)
    # The edge's OUTPOST_EDGE_CALLER_KEY (`<kid>:<base64 key>`): hand it over, never print it.
    caller_key: str = field(default="", repr=False)


def admin_client(addr: str, paths: StatePaths, *, timeout: float = 5.0) -> hvac.Client:
    """Log in with the admin AppRole created by the server's `initialize` blocks."""
    client = hvac.Client(url=addr, timeout=timeout)
    secret_id = paths.admin_secret_id.read_text().strip()
    client.auth.approle.login(role_id=ADMIN_ROLE_ID, secret_id=secret_id)
    return client


def _ensure_mounts(client: hvac.Client, created: list[str]) -> None:
    engines = client.sys.list_mounted_secrets_engines()["data"]
    if f"{KV_MOUNT}/" not in engines:
        client.sys.enable_secrets_engine("kv", path=KV_MOUNT, options={"version": "2"})
        created.append("mount secret/ (kv v2)")
    if "transit/" not in engines:
        client.sys.enable_secrets_engine("transit", path="transit")
        created.append("mount transit/")
    if "approle/" not in client.sys.list_auth_methods()["data"]:
        client.sys.enable_auth_method("approle")
        created.append("auth approle/")


def _write_policies(client: hvac.Client) -> None:
    client.sys.create_or_update_acl_policy(ORIGIN_POLICY, (POLICY_DIR / "origin.hcl").read_text())
    client.sys.create_or_update_acl_policy(ADMIN_POLICY, (POLICY_DIR / "admin.hcl").read_text())


def _ensure_origin_role(client: hvac.Client, spec: OriginRoleSpec) -> str:
    # Role settings are declarative: writing them again is harmless and applies TTL changes.
    client.auth.approle.create_or_update_approle(
        ORIGIN_ROLE,
        token_policies=[ORIGIN_POLICY],
        token_ttl=spec.token_ttl,
        token_max_ttl=spec.token_max_ttl,
        secret_id_ttl=spec.secret_id_ttl,
        token_type="service",
        bind_secret_id=True,
        token_no_default_policy=True,
    )
    return client.auth.approle.read_role_id(ORIGIN_ROLE)["data"]["role_id"]


def _ensure_transit_key(client: hvac.Client, name: str, key_type: str, created: list[str]) -> None:
    try:
        client.secrets.transit.read_key(name)
    except hvac.exceptions.InvalidPath:
        client.secrets.transit.create_key(name, key_type=key_type, exportable=False)
        created.append(f"transit key {name} ({key_type})")


def _read_kv(client: hvac.Client, name: str) -> dict[str, Any] | None:
    try:
        resp = client.secrets.kv.v2.read_secret_version(
            path=f"{ORIGIN_KV_PREFIX}/{name}", mount_point=KV_MOUNT, raise_on_deleted_version=True
        )
    except hvac.exceptions.InvalidPath:
        return None
    return dict(resp["data"]["data"])


def _write_kv(client: hvac.Client, name: str, data: Mapping[str, Any]) -> None:
    client.secrets.kv.v2.create_or_update_secret(
        path=f"{ORIGIN_KV_PREFIX}/{name}", secret=dict(data), mount_point=KV_MOUNT
    )


def _ensure_key_secret(client: hvac.Client, name: str, created: list[str]) -> bytes:
    current = _read_kv(client, name)
    if current and isinstance(current.get("key"), str):
        return decode_key(current["key"])
    value = new_key_b64()
    _write_kv(client, name, {"key": value})
    created.append(f"kv {ORIGIN_KV_PREFIX}/{name}")
    return decode_key(value)


def _load_demo(paths: StatePaths | None) -> dict[str, str]:
    if paths is None or not paths.demo_credentials.exists():
        return {}
    try:
        data = json.loads(paths.demo_credentials.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _ensure_demo_principals(
    client: hvac.Client, pepper: bytes, paths: StatePaths | None, created: list[str]
) -> tuple[str | None, str | None]:
    """Demo app API key and service client secret: KV keeps HMACs, the local file the plaintext.

    A credential is (re)generated only when KV and the local file no longer agree, so re-running
    the bootstrap keeps working credentials.
    """
    demo = _load_demo(paths)
    apps = _read_kv(client, "apps") or {}
    clients = _read_kv(client, "clients") or {}
    api_key, client_secret = demo.get("api_key"), demo.get("client_secret")
    app_rec = apps.get(DEMO_APP) if isinstance(apps.get(DEMO_APP), dict) else None
    if not (api_key and app_rec and app_rec.get("key_hmac") == hash_secret(pepper, api_key)):
        api_key = new_api_key(DEMO_APP)
        apps[DEMO_APP] = {"key_hmac": hash_secret(pepper, api_key), "scope": DEFAULT_SCOPE}
        _write_kv(client, "apps", apps)
        created.append(f"app {DEMO_APP}")
    cli_rec = clients.get(DEMO_CLIENT) if isinstance(clients.get(DEMO_CLIENT), dict) else None
    if not (
        client_secret
        and cli_rec
        and cli_rec.get("secret_hmac") == hash_secret(pepper, client_secret)
    ):
        client_secret = new_key_b64(32)
        clients[DEMO_CLIENT] = {
            "secret_hmac": hash_secret(pepper, client_secret),
            "scope": DEFAULT_SCOPE,
        }
        _write_kv(client, "clients", clients)
        created.append(f"client {DEMO_CLIENT}")
    if paths is not None:
        body = {
            "app_id": DEMO_APP,
            "api_key": api_key,
            "client_id": DEMO_CLIENT,
            "client_secret": client_secret,
        }
        if body != demo:
            write_private(paths.demo_credentials, json.dumps(body, indent=2).encode())
    return api_key, client_secret


def _secret_id_valid(client: hvac.Client, secret_id: str) -> bool:
    try:
        resp = client.auth.approle.read_secret_id(ORIGIN_ROLE, secret_id)
    except hvac.exceptions.InvalidRequest:
        return False
    return bool(resp and resp.get("data"))


def _ensure_origin_secret_id(
    client: hvac.Client, role_id: str, paths: StatePaths | None, created: list[str]
) -> str:
    if paths is not None and paths.origin_approle.exists():
        try:
            saved = json.loads(paths.origin_approle.read_text())
        except (OSError, ValueError):
            saved = {}
        secret_id = saved.get("secret_id")
        if saved.get("role_id") == role_id and secret_id and _secret_id_valid(client, secret_id):
            return str(secret_id)
    secret_id = client.auth.approle.generate_secret_id(
        ORIGIN_ROLE, metadata={"issued_by": "outpost-bootstrap"}
    )["data"]["secret_id"]
    created.append(f"secret_id for {ORIGIN_ROLE}")
    if paths is not None:
        body = {"role_id": role_id, "secret_id": secret_id}
        write_private(paths.origin_approle, json.dumps(body).encode())
    return secret_id


def bootstrap(
    client: hvac.Client,
    *,
    paths: StatePaths | None = None,
    spec: OriginRoleSpec | None = None,
) -> BootstrapResult:
    """Bring Vault to the state Outpost needs; safe to run any number of times.

    With `paths`, the origin's role_id/secret_id and the demo credentials are written to 0600 files
    in the state dir (the local stack's delivery mechanism; see docs/vault.md for production).
    """
    created: list[str] = []
    _ensure_mounts(client, created)
    _write_policies(client)
    role_id = _ensure_origin_role(client, spec or OriginRoleSpec())
    _ensure_transit_key(client, TRANSIT_KEY, "ed25519", created)
    _ensure_transit_key(client, ATTEST_TRANSIT_KEY, "rsa-2048", created)
    pepper = _ensure_key_secret(client, "hmac", created)
    _ensure_key_secret(client, "refresh", created)
    edge_caller_key = caller_key.ensure(client, created)
    api_key, client_secret = _ensure_demo_principals(client, pepper, paths, created)
    secret_id = _ensure_origin_secret_id(client, role_id, paths, created)
    for item in created:
        log.info("bootstrap created %s", item)
    return BootstrapResult(
        role_id=role_id,
        secret_id=secret_id,
        demo_api_key=api_key,
        demo_client_secret=client_secret,
        created=created,
        caller_key=edge_caller_key,
    )


def bootstrap_local(
    state_dir: Path, addr: str, *, spec: OriginRoleSpec | None = None
) -> BootstrapResult:
    """Bootstrap the local persistent server via its admin AppRole (used by `outpost up`)."""
    paths = ensure_state(state_dir)
    return bootstrap(admin_client(addr, paths), paths=paths, spec=spec)


def wrapped_origin_secret_id(client: hvac.Client, wrap_ttl: str = "10m") -> str:
    """A response-wrapped secret_id for the origin: a single-use token a deployer hands over.

    Only the wrapping token travels; the origin unwraps it once at start
    (`OUTPOST_VAULT_WRAPPED_SECRET_ID_FILE`). A wrapping token that was already used or expired
    fails the unwrap, which tells the operator the delivery was intercepted or too slow.
    """
    resp = client.auth.approle.generate_secret_id(
        ORIGIN_ROLE, metadata={"issued_by": "outpost-bootstrap"}, wrap_ttl=wrap_ttl
    )
    return resp["wrap_info"]["token"]
