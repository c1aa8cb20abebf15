"""Token issuer settings (env prefix `OUTPOST_IDENTITY_`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
