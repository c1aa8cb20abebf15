"""The local edge server: config from file, env and flags; uvicorn serving the ASGI adapter, with
small POSTs served without it (edge.hitpath)."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edge.app import EdgeApp
from edge.asgi import ASGIEdge
from edge.config import ENV_PREFIX, ConfigError, EdgeConfig, from_mapping
from edge.hitpath import hit_first_protocol
from edge.runtime.local import LocalPlatform


def load_config(
    file: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> EdgeConfig:
    """Merge settings: defaults < TOML file < OUTPOST_EDGE_* env < explicit overrides (flags)."""
    raw: dict[str, Any] = {}
    if file is not None:
        try:
            raw.update(tomllib.loads(Path(file).read_text()))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {file}: {exc}") from None
    env = os.environ if env is None else env
    raw.update({k: v for k, v in env.items() if k.startswith(ENV_PREFIX)})
    if overrides:
        raw.update({k: v for k, v in overrides.items() if v not in (None, [], ())})
    # Env keys win over file keys of the same field: normalise both to field names first.
    merged: dict[str, Any] = {}
    for key, value in raw.items():
        name = key[len(ENV_PREFIX) :].lower() if key.startswith(ENV_PREFIX) else key
        merged[name] = value
    return from_mapping(merged)


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


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn

    args = parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.origin:
        overrides["origins"] = json.dumps([{"url": u} for u in args.origin])
    if args.issuer:
        overrides["issuers"] = json.dumps(
            [{"issuer": i, "audience": args.audience} for i in args.issuer]
        )
    try:
        config = load_config(args.config, overrides=overrides)
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
    uvicorn.run(
        asgi, host=args.host, port=args.port, log_level=args.log_level, **uvicorn_options(asgi)
    )


def uvicorn_options(asgi: ASGIEdge) -> dict[str, Any]:
    """How uvicorn serves the edge (besides where and what it logs); tests run the same."""
    return {
        # The fast parser (small POSTs served without the ASGI adapter) and loop; no access
        # log (the edge logs what matters, with the request id), no `server` header.
        "http": hit_first_protocol(asgi),
        "loop": "uvloop",
        "access_log": False,
        "server_header": False,
        "lifespan": "on",
        # The edge decides itself which peers' X-Forwarded-For to trust (trusted_proxies);
        # uvicorn's own proxy handling would trust any loopback peer's header.
        "proxy_headers": False,
    }
