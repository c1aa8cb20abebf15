"""Real OpenBao servers for the Vault/identity tests (one dev server per session), app harness."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import hvac
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import generate_latest

from origin.identity.component import IdentityComponent
from origin.identity.settings import IdentitySettings
from origin.secrets.client import AppRoleCredentials
from origin.secrets.component import SecretsComponent
from origin.secrets.settings import VaultSettings
from tests.conftest import ServedApp, free_port
from vault.bootstrap import BootstrapResult, bootstrap
from vault.server import POLICY_DIR, VaultProcess, ensure_state, start_dev_vault


@dataclass
class DevVault:
    proc: VaultProcess
    root: hvac.Client
    boot: BootstrapResult
    state_dir: Path

    @property
    def addr(self) -> str:
        return self.proc.addr


@pytest.fixture(scope="session")
def dev_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevVault]:
    state = tmp_path_factory.mktemp("devvault")
    token = secrets.token_hex(16)
    proc = start_dev_vault(free_port(), token, state / "bao.log")
    try:
        root = hvac.Client(url=proc.addr, token=token, timeout=5)
        boot = bootstrap(root, paths=ensure_state(state))
        yield DevVault(proc, root, boot, state)
    finally:
        proc.stop()


def make_short_role(root: hvac.Client, name: str, ttl: str, max_ttl: str) -> AppRoleCredentials:
    """An extra AppRole with the origin's policy and tiny token TTLs (renewal/expiry tests)."""
    root.sys.create_or_update_acl_policy("outpost-origin", (POLICY_DIR / "origin.hcl").read_text())
    root.auth.approle.create_or_update_approle(
        name,
        token_policies=["outpost-origin"],
        token_ttl=ttl,
        token_max_ttl=max_ttl,
        token_no_default_policy=True,
    )
    role_id = root.auth.approle.read_role_id(name)["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id(name)["data"]["secret_id"]
    return AppRoleCredentials(role_id=role_id, secret_id=secret_id)


def vault_settings(addr: str, **overrides: object) -> VaultSettings:
    base: dict[str, object] = {
        "addr": addr,
        "timeout": 1.0,
        "refresh_interval": 30.0,
        "retry_interval": 0.3,
        "startup_timeout": 3.0,
    }
    base.update(overrides)
    return VaultSettings(**base)


def build_app(secrets_c: SecretsComponent, identity: IdentityComponent) -> FastAPI:
    """Minimal stand-in for the origin app: lifespan starts the components, /healthz, /metrics."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await secrets_c.start()
        await identity.start()
        yield
        await identity.stop()
        await secrets_c.stop()

    app = FastAPI(lifespan=lifespan)
    app.include_router(identity.router)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        parts = [secrets_c.health(), identity.health()]
        return JSONResponse(
            {
                "ready": all(p["ready"] for p in parts),
                "degraded": [r for p in parts for r in p["degraded"]],
            }
        )

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(secrets_c.metrics.registry), media_type="text/plain")

    return app


ISSUER = "http://issuer.test"
# What a device signs as its proofs' `htu` when the test calls the origin directly.
TOKEN_ENDPOINT = f"{ISSUER}/oauth/token"


def identity_settings(**overrides: object) -> IdentitySettings:
    """The tests' issuer; registration caps high enough for a whole session of registrations
    from one address (tests/vault/test_registration_caps.py sets its own)."""
    base: dict[str, object] = {
        "issuer": ISSUER,
        "jwks_refresh_interval": 0.5,
        "register_per_address": 10_000,
        "register_per_app": 10_000,
    }
    base.update(overrides)
    return IdentitySettings(**base)


def identity_stack(
    addr: str,
    creds: AppRoleCredentials,
    identity: IdentitySettings | None = None,
    **vault_overrides: object,
) -> tuple[SecretsComponent, IdentityComponent]:
    sc = SecretsComponent(vault_settings(addr, **vault_overrides), credentials=creds)
    ic = IdentityComponent(identity or identity_settings(), sc)
    return sc, ic


@pytest.fixture(scope="session")
def origin_creds(dev_vault: DevVault) -> AppRoleCredentials:
    return AppRoleCredentials(role_id=dev_vault.boot.role_id, secret_id=dev_vault.boot.secret_id)


@pytest.fixture(scope="session")
def served(dev_vault: DevVault, origin_creds: AppRoleCredentials) -> Iterator[ServedApp]:
    """One identity app against the session dev server (tests that don't stop Vault)."""
    sc, ic = identity_stack(dev_vault.addr, origin_creds)
    with ServedApp(build_app(sc, ic)) as srv:
        srv.secrets = sc  # type: ignore[attr-defined]
        srv.identity = ic  # type: ignore[attr-defined]
        yield srv
