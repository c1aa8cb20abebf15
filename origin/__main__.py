"""`python -m origin [--host H] [--port P] [--grpc-port G] [--admin-port A] [--models-dir DIR]
[--log-format text|json]`.

Every flag is also a setting: env vars OUTPOST_ORIGIN_* (tracing: OUTPOST_TRACING_*).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from origin.logs import LOG_FORMATS, configure_logging
from origin.settings import OriginSettings


def _build_app(settings: OriginSettings) -> FastAPI:
    """The origin app, with Vault secrets and the token issuer when Vault credentials are set.

    Vault is on when `OUTPOST_VAULT_APPROLE_FILE` (or `_ROLE_ID_FILE`) is configured and
    `OUTPOST_VAULT_ENABLED` is not false; without it the origin serves models only.
    """
    from origin.app import create_app
    from origin.secrets.settings import VaultSettings

    vault = VaultSettings()
    if vault.enabled and (vault.approle_file or vault.role_id_file):
        from origin.identity.component import build_origin_app

        return build_origin_app(settings, vault)
    if settings.caller_proof_required:
        raise SystemExit(
            "origin: OUTPOST_ORIGIN_CALLER_PROOF_REQUIRED needs Vault, where the caller key "
            "lives: set OUTPOST_VAULT_APPROLE_FILE (docs/vault.md)"
        )
    return create_app(settings)


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = argparse.ArgumentParser(prog="python -m origin", description=__doc__)
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--grpc-port", type=int, help="serve OIP gRPC on this port too")
    parser.add_argument(
        "--admin-port",
        type=int,
        help="internal listener: /metrics, /healthz, /v1/models without a caller proof",
    )
    parser.add_argument("--models-dir", type=Path)
    parser.add_argument("--log-level")
    parser.add_argument("--log-format", choices=LOG_FORMATS, help="text (default) or json lines")
    parser.add_argument("--no-watch", action="store_true", help="disable hot reload")
    args = parser.parse_args(argv)
    overrides = {
        k: v
        for k, v in {
            "host": args.host,
            "port": args.port,
            "grpc_port": args.grpc_port,
            "admin_port": args.admin_port,
            "models_dir": args.models_dir,
            "log_level": args.log_level,
            "log_format": args.log_format,
        }.items()
        if v is not None
    }
    if args.no_watch:
        overrides["watch"] = False
    settings = OriginSettings(**overrides)
    configure_logging(settings.log_level, settings.log_format)
    app = _build_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # uvicorn's own lines go through our handler (text or JSON)
        log_level=settings.log_level.lower(),
        access_log=False,
        loop="auto",
        http="auto",
        timeout_graceful_shutdown=10,
    )
    # One server on both sockets: the middleware tells the internal listener's requests apart
    # by the port they arrived on.
    sockets = [config.bind_socket()]
    if settings.admin_port:
        admin = uvicorn.Config(
            app, host=settings.admin_host, port=settings.admin_port, log_config=None
        )
        sockets.append(admin.bind_socket())
    uvicorn.Server(config).run(sockets=sockets)


if __name__ == "__main__":
    main()
