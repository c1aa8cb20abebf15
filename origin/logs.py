"""Origin log output: readable text by default, JSON lines on request, and the request context.

`configure_logging(level, "text" | "json")` sets up the root logger for `python -m origin`
(uvicorn's own lines included). The middleware binds each request's id and trace id with
`bind_request`; every line logged while the request runs (in its task or in threads it starts
with `asyncio.to_thread`) then carries both in JSON output, and problem bodies read the trace id
from here (`current_trace_id`). Structured fields for JSON go in `extra={"fields": {...}}`.
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar, Token
from typing import Any, Literal

import orjson

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# (request id, trace id) of the request being handled, or None outside requests.
_REQUEST: ContextVar[tuple[str, str] | None] = ContextVar("outpost_request", default=None)
_json_output = False  # set by configure_logging: build `fields` only when they are written


def json_output() -> bool:
    """Whether log lines are JSON (callers can skip building `extra` fields otherwise)."""
    return _json_output


def bind_request(request_id: str, trace_id: str) -> Token[tuple[str, str] | None]:
    """Mark the current context as handling this request; undo with `unbind_request(token)`."""
    return _REQUEST.set((request_id, trace_id))


def unbind_request(token: Token[tuple[str, str] | None]) -> None:
    _REQUEST.reset(token)


def current_trace_id() -> str | None:
    """The trace id of the request being handled here, if any."""
    bound = _REQUEST.get()
    return bound[1] if bound else None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request/trace ids, fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _iso_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        bound = _REQUEST.get()
        if bound is not None:
            out["request_id"], out["trace_id"] = bound
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def _iso_time(created: float) -> str:
    millis = int(created * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{millis:03d}Z"


def configure_logging(level: str, fmt: LogFormat = "text") -> None:
    """Root logger to stderr in `fmt`; replaces handlers set before (e.g. by basicConfig)."""
    global _json_output
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {fmt!r}")
    _json_output = fmt == "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Client libraries log each HTTP call at debug/info (Vault calls, span exports).
    for noisy in ("urllib3", "requests", "hvac"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
