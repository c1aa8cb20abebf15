"""The local edge server (`python -m edge`): settings from a TOML file, the environment and
flags, served by uvicorn through the ASGI adapter."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge.adapters.asgi import ASGIEdge
from edge.adapters.http_guard import HttpLimits, guarded_protocol
from edge.config import ConfigError, EdgeConfig, env_layer, load_config, read_toml
from edge.core.app import EdgeApp
from edge.runtime.local import LocalPlatform


def build_asgi(config: EdgeConfig) -> ASGIEdge:
    """The ASGI app serving `config` with a fresh local platform."""
    platform = LocalPlatform(connect_timeout=config.connect_timeout_seconds)
    internal = frozenset({config.admin_port}) if config.admin_port else frozenset()
    return ASGIEdge(EdgeApp(config, platform), on_shutdown=platform.aclose, internal_ports=internal)


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
    p.add_argument(
        "--admin-port",
        type=int,
        default=None,
        help="internal listener for /metrics and detailed /healthz (loopback; 0: none)",
    )
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
    if args.admin_port is not None:
        flags["admin_port"] = args.admin_port
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
    server = uvicorn.Server(uvicorn.Config(asgi, log_level=args.log_level, **uvicorn_options(asgi)))
    server.run(sockets=listeners(args.host, args.port, config))


def listeners(host: str, port: int, config: EdgeConfig) -> list[socket.socket]:
    """The public socket, and the internal listener's when `admin_port` is set: one uvicorn
    server serves both, and the ASGI adapter tells their requests apart by port."""
    out = [_bind(host, port)]
    if config.admin_port:
        out.append(_bind(config.admin_host, config.admin_port))
    return out


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(f"edge: cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def uvicorn_options(asgi: ASGIEdge) -> dict[str, Any]:
    """How uvicorn serves the edge (besides where and what it logs); tests run the same."""
    app = asgi.app
    return {
        # uvicorn's httptools protocol behind the edge's HTTP limits; uvloop; no WebSockets;
        # no access log (the edge logs what matters, with the request id), no `server` header.
        "http": guarded_protocol(HttpLimits.from_config(app.config), app.stats),
        "ws": "none",
        "loop": "uvloop",
        "access_log": False,
        "server_header": False,
        "lifespan": "on",
        # The edge decides itself which peers' X-Forwarded-For to trust (trusted_proxies);
        # uvicorn's own proxy handling would trust any loopback peer's header.
        "proxy_headers": False,
    }
