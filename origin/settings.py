"""Origin settings: env vars prefixed `OUTPOST_ORIGIN_` (or flags of `python -m origin`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OriginSettings(BaseSettings):
    """Everything the origin inference service can be told at start-up."""

    model_config = SettingsConfigDict(env_prefix="OUTPOST_ORIGIN_", extra="ignore")

    host: str = Field("127.0.0.1", description="Interface to listen on.")
    port: int = Field(8080, ge=0, le=65535, description="TCP port.")
    grpc_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="TCP port of the Open Inference Protocol gRPC server (inference."
        "GRPCInferenceService and grpc.health.v1), on `host`; unset: no gRPC server.",
    )
    models_dir: Path = Field(Path("models"), description="Model repository folder.")
    watch: bool = Field(True, description="Hot-reload models when the folder changes.")
    watch_debounce_ms: int = Field(300, ge=10, description="Quiet time before a rescan.")
    watch_force_polling: bool = Field(False, description="Poll instead of inotify.")
    max_body_bytes: int = Field(
        1 << 20,
        ge=1,
        description="Request body limit (413 above); also the largest gRPC message "
        "(RESOURCE_EXHAUSTED above).",
    )
    max_inputs_per_request: int = Field(256, ge=1, description="Inputs per request (422 above).")
    max_input_chars: int = Field(100_000, ge=1, description="Characters per text input.")
    max_image_body_bytes: int = Field(
        16 << 20,
        ge=1,
        description="Request body limit for image uploads (the image routes, and OIP inference "
        "on image models); 413 above.",
    )
    max_images_per_request: int = Field(16, ge=1, description="Images per request (422 above).")
    max_image_pixels: int = Field(
        50_000_000,
        ge=1,
        description="Largest image (width x height, from its header) that is decoded; larger "
        "ones get 413 before any pixel is decoded (decompression-bomb guard).",
    )
    image_decode_threads: int = Field(
        2, ge=1, description="Threads decoding and preprocessing images (bounds their memory)."
    )
    max_pending_images: int = Field(
        64, ge=1, description="Images waiting to be decoded at most; beyond it 429 + Retry-After."
    )
    inference_threads: int = Field(
        4, ge=1, description="Threads running ORT batches (each batch is itself multi-threaded)."
    )
    gc_freeze: bool = Field(
        True,
        description="Exclude objects alive after start-up and after each model load from "
        "garbage collection (gc.freeze), so full collections stop pausing requests.",
    )
    log_level: str = Field("info", description="Python logging level.")
    log_format: Literal["text", "json"] = Field(
        "text", description="`text` (readable lines) or `json` (one JSON object per line)."
    )
    access_log: bool = Field(
        True, description="One log line per request (probes such as health checks at debug)."
    )
    admin_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Internal listener (on `admin_host`) serving only `GET /metrics`, "
        "`/healthz`, `/v1/models` and `/v2/health/live|ready`, without a caller proof: for "
        "Prometheus and operators. Keep it off the public network. Unset: none.",
    )
    admin_host: str = Field("127.0.0.1", description="Address the internal listener binds.")
    caller_proof_required: bool = Field(
        False,
        description="Refuse (401, gRPC UNAUTHENTICATED) every request without a valid caller "
        "proof (`X-Outpost-Caller`, signed by the edge with the key in Vault), except health "
        "probes and public keys. Needs Vault. `outpost up` turns it on.",
    )
    caller_proof_max_age_seconds: float = Field(
        120.0,
        gt=0,
        le=600,
        description="How old a caller proof may be: covers the edge's retries of one request "
        "(a proof is not single-use within it).",
    )
