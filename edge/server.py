"""The local edge server (`python -m edge`): settings from a TOML file, the environment and
flags, served by uvicorn through the ASGI adapter."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge.adapters.asgi import ASGIEdge
from edge.config import ConfigError, EdgeConfig, env_layer, load_config, read_toml
from edge.core.app import EdgeApp
from edge.runtime.local import LocalPlatform


def build_asgi(config: EdgeConfig) -> ASGIEdge:
    """The ASGI app serving `config` with a fresh local platform."""
    platform = LocalPlatform(connect_timeout=config.connect_timeout_seconds)
    return ASGIEdge(EdgeApp(config, platform), on_shutdown=platform.aclose)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m edge", description="Run the Outpost edge locally.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--config", type=Path, help="TOML file with edge settings (field names)")
    p.add_argument("--origin", action="append", default=[], help="origin base URL (repeatable)")
    p.add_argument(
        "--issuer",
        action="append",
        default=[],
        help="trusted issuer URL, JWKS found by OIDC discovery (repeatable)",
    )
    p.add_argument("--audience", default="outpost", help="audience for --issuer entries")
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> EdgeConfig:
    """Settings: defaults < the TOML file < OUTPOST_EDGE_* variables < flags."""
    flags: dict[str, Any] = {}
    if args.origin:
        flags["origins"] = json.dumps([{"url": u} for u in args.origin])
    if args.issuer:
        flags["issuers"] = json.dumps(
            [{"issuer": i, "audience": args.audience} for i in args.issuer]
        )
    file_layer = read_toml(str(args.config)) if args.config is not None else {}
    return load_config(file_layer, env_layer(os.environ), flags)


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn

    args = parse_args(argv)
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        raise SystemExit(f"edge: bad configuration: {exc}") from None
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # Client libraries log every health-check request at INFO: keep the edge's own lines.
    for noisy in ("httpx", "httpcore", "aiohttp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    asgi = build_asgi(config)
    # What is alive now (modules, settings, the app) lives as long as the process: keep it out
    # of the collector's scans, which cost a cache hit about 8 us when measured (the origin
    # does the same, origin/gcpolicy.py).
    gc.collect()
    gc.freeze()
    uvicorn.run(asgi, host=args.host, port=args.port, log_level=args.log_level, **uvicorn_options())


def uvicorn_options() -> dict[str, Any]:
    """How uvicorn serves the edge (besides where and what it logs); tests run the same."""
    return {
        # The C parser and loop; no access log (the edge logs what matters, with the request
        # id), no `server` header.
        "http": "httptools",
        "loop": "uvloop",
        "access_log": False,
        "server_header": False,
        "lifespan": "on",
        # The edge decides itself which peers' X-Forwarded-For to trust (trusted_proxies);
        # uvicorn's own proxy handling would trust any loopback peer's header.
        "proxy_headers": False,
    }
