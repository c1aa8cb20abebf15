"""Where the origin finds Vault and its AppRole credentials (env prefix `OUTPOST_VAULT_`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class VaultSettings(BaseSettings):
    """Vault connection, credentials delivery and refresh cadence for the origin.

    Credentials come from files, never from the settings themselves: either one JSON file
    (`approle_file`: `{"role_id": ..., "secret_id": ...}` or `{"role_id": ..., "wrapped_secret_id":
    ...}`) or separate `role_id_file` plus `secret_id_file` / `wrapped_secret_id_file`.
    """

    model_config = SettingsConfigDict(env_prefix="OUTPOST_VAULT_", extra="ignore")

    enabled: bool = True
    addr: str = "http://127.0.0.1:8200"
    approle_file: Path | None = None
    role_id_file: Path | None = None
    secret_id_file: Path | None = None
    wrapped_secret_id_file: Path | None = None
    approle_mount: str = "approle"
    # hvac defaults to 30 s; a secrets tier that slow is "down" for our purposes.
    timeout: float = Field(default=2.0, gt=0, le=30)
    renew_fraction: float = Field(default=2 / 3, gt=0, lt=1)
    refresh_interval: float = Field(default=60.0, gt=0)
    refresh_jitter: float = Field(default=0.2, ge=0, lt=1)
    # While Vault is failing, retry this often (jittered) so recovery is quick.
    retry_interval: float = Field(default=5.0, gt=0)
    # At startup, keep trying this long for a first copy of the secrets before refusing to start.
    startup_timeout: float = Field(default=15.0, ge=0)
    kv_mount: str = "secret"
    kv_prefix: str = "outpost/origin"
    state_prefix: str = "outpost/origin-state"
    transit_mount: str = "transit"
    transit_key: str = "outpost-jwt"
