"""The origin with each request's subject read from an `X-Bench-Subject` header, for measuring
(and testing) fair scheduling with many subjects from one load generator, on loopback.

    python -m bench.lib.subject_origin PORT MODELS_DIR

In a deployment the subject comes only from the proof the edge attaches to each request (the
origin's caller check stores it in `request.state.caller_subject`). This stands in for that
check: it trusts the header, so it is a benchmark harness and never part of a deployment. It
serves the plain origin app (`origin.app.create_app`, no Vault), its other settings from
`OUTPOST_ORIGIN_*`, without hot reload.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from bench.lib import procs

HEADER = "X-Bench-Subject"


def with_subject_header(app: Any) -> Any:
    """`app` (ASGI) with `scope["state"]["caller_subject"]` set from the `HEADER` header."""
    name = HEADER.lower().encode()

    async def wrapped(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for key, value in scope["headers"]:
                if key == name:
                    scope.setdefault("state", {})["caller_subject"] = value.decode("latin-1")
        await app(scope, receive, send)

    return wrapped


def argv(port: int, models_dir: Path | str) -> list[str]:
    """The command line that runs this origin on `port` serving `models_dir`."""
    return [sys.executable, "-m", "bench.lib.subject_origin", str(port), str(models_dir)]


def start(port: int, models_dir: Path | str, log: Path, **settings: str) -> procs.Server:
    """Run it (`settings`: extra environment, e.g. OUTPOST_ORIGIN_*) and wait until it is
    ready (every model loaded)."""
    env = procs.clean_env({"TOKENIZERS_PARALLELISM": "false", **settings})
    return procs.start_server(argv(port, models_dir), port, "/v2/health/ready", log, env=env)


def main() -> None:
    import uvicorn

    from origin.app import create_app
    from origin.logs import configure_logging
    from origin.settings import OriginSettings

    port, models_dir = int(sys.argv[1]), Path(sys.argv[2])
    settings = OriginSettings(port=port, models_dir=models_dir, watch=False)
    configure_logging(settings.log_level, settings.log_format)
    uvicorn.run(
        with_subject_header(create_app(settings)),
        host="127.0.0.1",
        port=port,
        log_config=None,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


if __name__ == "__main__":
    main()
