"""The origin's identity component: token endpoint, JWKS and discovery, wired to Vault.

Built on a started-before `SecretsComponent` (shared Vault client, snapshot and upkeep loop); the
JWKS refresh runs as a job of that loop, so a transit key rotation is picked up without a restart,
and so does the purge of expired refresh-token families (one shard per step).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, FastAPI

from origin.caller import SECRET_NAME as CALLER_SECRET
from origin.caller import CallerVerifier
from origin.identity.attestation import AttestationChecker, LocalAttestationIssuer
from origin.identity.issuer import TokenIssuer
from origin.identity.jwks import JwksCache
from origin.identity.refresh import RefreshPurger, RefreshTokenStore
from origin.identity.router import build_router
from origin.identity.settings import IdentitySettings
from origin.identity.signer import TransitJwtSigner
from origin.secrets.component import SecretsComponent, health_report
from origin.secrets.settings import VaultSettings
from origin.secrets.snapshot import describe_error
from origin.settings import OriginSettings

log = logging.getLogger("outpost.origin.identity")


class IdentityComponent:
    name = "identity"

    def __init__(self, settings: IdentitySettings, secrets: SecretsComponent) -> None:
        self.settings = settings
        self.secrets = secrets
        self.jwks: JwksCache | None = None
        self.issuer: TokenIssuer | None = None
        self.local_attestation: LocalAttestationIssuer | None = None
        self.purger: RefreshPurger | None = None
        self.router = APIRouter()
        self._issue_failure: str | None = None
        self._ready = False

    def _wire(self) -> None:
        client, snapshot = self.secrets.client, self.secrets.snapshot
        assert client is not None and snapshot is not None, "start the SecretsComponent first"
        metrics = self.secrets.metrics
        self.jwks = JwksCache(client)
        if self.settings.local_attestation:
            self.local_attestation = LocalAttestationIssuer(self.settings, client)
        store = RefreshTokenStore(client, self.settings.refresh_token_ttl)
        self.issuer = TokenIssuer(
            self.settings,
            snapshot,
            TransitJwtSigner(client, self.jwks),
            store,
            attestation_checker=AttestationChecker(self.settings, self.local_attestation),
            metrics=metrics,
        )
        self.router.include_router(
            build_router(
                self.settings,
                self.issuer,
                self.jwks,
                metrics,
                local_attestation=self.local_attestation,
            )
        )

        def refresh_jwks() -> bool:
            assert self.jwks is not None
            ok = self.jwks.try_load()
            doc = self.jwks.document()
            metrics.jwks_keys.set(len(doc["keys"]) if doc else 0)
            if self.local_attestation is not None:
                ok = self.local_attestation.jwks.try_load() and ok
            return ok

        self.secrets.add_job("jwks", self.settings.jwks_refresh_interval, refresh_jwks)
        self.purger = RefreshPurger(store)

        def purge() -> bool:
            assert self.purger is not None
            try:
                deleted = self.purger.step().deleted
            except Exception as exc:  # Vault unreachable: the next step retries
                log.warning("refresh-token purge step failed: %s", describe_error(exc))
                return False
            metrics.refresh_purged.inc(deleted)
            return True

        self.secrets.add_job("refresh-purge", self.settings.purge_interval, purge)

    async def start(self) -> None:
        """Wire the router; the JWKS loads with the secrets component's start (or its loop)."""
        if self.issuer is None:
            self._wire()
        assert self.jwks is not None
        if self.jwks.state is None:
            await asyncio.to_thread(self.jwks.try_load)
        if self.local_attestation is not None and self.local_attestation.jwks.state is None:
            await asyncio.to_thread(self.local_attestation.jwks.try_load)
        self._ready = True

    async def stop(self) -> None:
        self._ready = False

    def health(self) -> dict[str, Any]:
        degraded = []
        if self.jwks is None or self.jwks.state is None:
            degraded.append("jwks: signing keys not loaded")
        return health_report(self._ready, degraded)


def build_origin_app(
    origin_settings: OriginSettings | None = None,
    vault_settings: VaultSettings | None = None,
    identity_settings: IdentitySettings | None = None,
) -> FastAPI:
    """The origin app with Vault secrets, the token issuer and the caller proof check plugged in
    (metrics included)."""
    from origin.app import create_app

    origin_settings = origin_settings or OriginSettings()
    secrets, identity = vault_components(vault_settings, identity_settings)
    app = create_app(
        origin_settings,
        components=[secrets, identity],
        caller=caller_verifier(origin_settings, secrets),
    )
    # Our collectors live in their own registry; expose them on the origin's /metrics.
    app.state.metrics.registry.register(secrets.metrics.registry)
    return app


def caller_verifier(settings: OriginSettings, secrets: SecretsComponent) -> CallerVerifier:
    """The caller proof check, on the caller key record of `secrets`' snapshot."""

    def record() -> Mapping[str, Any] | None:
        snapshot = secrets.snapshot
        return snapshot.get(CALLER_SECRET) if snapshot is not None else None

    return CallerVerifier(
        record,
        required=settings.caller_proof_required,
        max_age=settings.caller_proof_max_age_seconds,
    )


def vault_components(
    vault_settings: VaultSettings | None = None,
    identity_settings: IdentitySettings | None = None,
) -> tuple[SecretsComponent, IdentityComponent]:
    """The two components to hand to the origin app factory, in start order."""
    secrets = SecretsComponent(vault_settings or VaultSettings())
    return secrets, IdentityComponent(identity_settings or IdentitySettings(), secrets)
