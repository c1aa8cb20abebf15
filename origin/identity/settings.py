"""Token issuer settings (env prefix `OUTPOST_IDENTITY_`)."""

from __future__ import annotations

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AttestationIssuerSpec(BaseModel):
    """An app attestation issuer whose tokens registration may require (any JWKS issuer)."""

    issuer: str = Field(description="Exact `iss` claim value.")
    jwks_url: str = Field(description="URL of the issuer's JSON Web Key Set.")
    audiences: list[str] = Field(
        min_length=1, description="A token's `aud` must contain one of these."
    )
    algorithms: list[str] = Field(["RS256"], description="Accepted `alg` values.")


class IdentitySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OUTPOST_IDENTITY_", extra="ignore")

    issuer: str = "http://127.0.0.1:8000"
    audience: str = "outpost"
    access_token_ttl: int = Field(default=900, gt=0, le=3600)
    # Sliding lifetime of a refresh-token family: each rotation extends it up to this long.
    refresh_token_ttl: int = Field(default=30 * 24 * 3600, gt=0)
    jwks_refresh_interval: float = Field(default=60.0, gt=0)
    jwks_max_age: int = Field(default=300, ge=0)
    # Retry-After sent with 503 when Vault transit cannot sign.
    retry_after: int = Field(default=5, ge=1)

    # Device keys: DPoP proofs (RFC 9449) at the token endpoint.
    dpop_algorithms: list[str] = Field(
        ["ES256", "EdDSA"],
        description="DPoP proof algorithms accepted (ES256: Secure Enclave, Android Keystore).",
    )
    dpop_max_age: int = Field(
        60, gt=0, le=600, description="How old (seconds) a DPoP proof's `iat` may be."
    )
    dpop_clock_skew: int = Field(
        10, ge=0, le=300, description="How far in the future (seconds) a proof's `iat` may be."
    )
    token_endpoint_urls: list[str] = Field(
        [],
        description="Other URLs apps reach the token endpoint at (a proof's `htu`), beside "
        "`<issuer>/oauth/token`: e.g. a LAN address of the local stack.",
    )

    # Registration caps (token buckets, counted by each origin replica). The client address is
    # the one the edge's caller proof names; without a proof, uvicorn's (X-Forwarded-For is
    # believed from FORWARDED_ALLOW_IPS peers only).
    register_per_address: int = Field(
        10, ge=1, description="Device registrations a client address may make per window."
    )
    register_address_window: int = Field(
        60, ge=1, description="Window (seconds) of the per-address cap."
    )
    register_per_app: int = Field(
        300,
        ge=1,
        description="Device registrations per app key per window, unless the app sets its own "
        "(`outpost apps create --register-limit`).",
    )
    register_app_window: int = Field(60, ge=1, description="Window (seconds) of the per-app cap.")
    ipv6_prefix: int = Field(
        64, ge=32, le=128, description="IPv6 clients are counted per prefix of this length."
    )

    # Refresh-token families in Vault: expired and revoked ones are deleted in the background.
    purge_interval: float = Field(
        60.0,
        gt=0,
        description="Seconds between purge steps; each step sweeps one of 64 shards of the "
        "refresh-token families.",
    )

    # App attestation at registration (each app sets off / monitor / enforce).
    attestation_header: str = Field(
        "X-Firebase-AppCheck", description="Request header carrying the attestation token."
    )
    firebase_project_number: str | None = Field(
        None,
        pattern=r"^[0-9]{1,20}$",
        description="Trust Firebase App Check tokens of this project (Google's JWKS).",
    )
    firebase_jwks_url: str = Field(
        "https://firebaseappcheck.googleapis.com/v1/jwks",
        description="Where App Check's public keys are published (Google's endpoint).",
    )
    attestation_issuers: list[AttestationIssuerSpec] = Field(
        [], description="Other attestation issuers (JSON list)."
    )
    attestation_jwks_ttl: int = Field(
        3600, ge=60, description="How long (seconds) an issuer's fetched JWKS is trusted."
    )
    local_attestation: bool = Field(
        False,
        description="Serve and trust the local attestation issuer (`/attestation/local/...`), "
        "the development stand-in for App Check's providers. `outpost up` turns it on.",
    )
    local_attestation_ttl: int = Field(
        3600, ge=60, le=7 * 24 * 3600, description="Lifetime of local attestation tokens."
    )
