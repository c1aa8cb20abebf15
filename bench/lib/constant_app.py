"""A minimal uvicorn app answering every request with one fixed response: what serving HTTP from
Python costs before any application logic (a baseline, not a product component).

    python -m bench.lib.constant_app PORT

uvicorn's defaults (uvloop and httptools when installed), no access log. The answer is a small
JSON body unless `CONSTANT_RESPONSE` holds `[[[name, value], ...], body]`: the headers and body
to replay (e.g. a response captured from the edge, or an embedding-sized body).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import uvicorn

from bench.lib import procs

BODY = b'{"object":"list","data":[{"embedding":[0.1,0.2,0.3]}]}'
HEADERS = [(b"content-type", b"application/json")]


def response() -> tuple[list[tuple[bytes, bytes]], bytes]:
    """(headers, body) to answer: `CONSTANT_RESPONSE` if set, else the small JSON body."""
    if not os.environ.get("CONSTANT_RESPONSE"):
        return HEADERS, BODY
    headers, body = json.loads(os.environ["CONSTANT_RESPONSE"])
    return [(k.encode(), v.encode()) for k, v in headers], body.encode()


def constant_app(headers: list[tuple[bytes, bytes]], body: bytes) -> Any:
    """A raw ASGI app that reads the whole request body and answers 200 `headers` + `body`."""

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def start(port: int, log: Path, captured: Any = None) -> procs.Server:
    """Run this app on `port` (answering `captured`, `[[[name, value], ...], body]`, if given)
    and wait until it answers."""
    extra = {"CONSTANT_RESPONSE": json.dumps(captured)} if captured is not None else None
    argv = [sys.executable, "-m", "bench.lib.constant_app", str(port)]
    return procs.start_server(argv, port, "/", log, env=procs.clean_env(extra))


def main() -> None:
    app = constant_app(*response())
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
