"""Prometheus metrics for Vault-backed secrets and token issuing (per app registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class VaultMetrics:
    """Registered on the registry the app exposes at /metrics (a fresh one when none is given)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.tokens_issued = Counter(
            "outpost_tokens_issued_total",
            "Access tokens issued, by OAuth grant.",
            ["grant"],
            registry=r,
        )
        self.token_errors = Counter(
            "outpost_token_errors_total",
            "Token requests refused, by OAuth error or 503.",
            ["error"],
            registry=r,
        )
        self.vault_up = Gauge(
            "outpost_vault_up",
            "1 when the last Vault refresh succeeded, 0 while degraded.",
            registry=r,
        )
        self.snapshot_time = Gauge(
            "outpost_secrets_snapshot_timestamp_seconds",
            "Unix time of the last good secrets snapshot.",
            registry=r,
        )
        self.jwks_keys = Gauge(
            "outpost_jwks_keys", "Public keys currently published in the JWKS.", registry=r
        )
        self.registrations_limited = Counter(
            "outpost_registrations_limited_total",
            "Device registrations refused with 429, by cap (address or app).",
            ["cap"],
            registry=r,
        )
        self.attestations = Counter(
            "outpost_attestation_checks_total",
            "App attestation checks at registration, by app, mode and result.",
            ["app", "mode", "result"],
            registry=r,
        )
        self.refresh_purged = Counter(
            "outpost_refresh_families_purged_total",
            "Expired or unusable refresh-token families deleted from Vault.",
            registry=r,
        )
        self.token_renewals = Counter(
            "outpost_vault_token_renewals_total",
            "Vault token renewals and re-logins.",
            ["kind"],
            registry=r,
        )
