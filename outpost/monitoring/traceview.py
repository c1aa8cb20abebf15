"""`outpost trace <trace id>`: one trace from the local trace receiver, printed as a tree."""

from __future__ import annotations

import json
import re

import httpx

from outpost.errors import OutpostError
from outpost.monitoring.receiver import SpanRecord, format_tree

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


def _receiver_url() -> str:
    from outpost.stack import StackSettings

    state_file = StackSettings().state_file
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        state = {}
    url = state.get("monitoring", {}).get("traces")
    if not url:
        raise OutpostError(
            f"no trace receiver in {state_file}",
            hint="start the stack with `./dev up --monitor`, or pass --url",
        )
    return str(url)


def fetch_trace_tree(trace_id: str, url: str | None = None) -> str:
    trace_id = trace_id.strip().lower()
    if not _TRACE_ID.match(trace_id):
        raise OutpostError(
            f"{trace_id!r} is not a trace id", hint="a trace id is 32 hex digits (trace_id=...)"
        )
    base = (url or _receiver_url()).rstrip("/")
    try:
        resp = httpx.get(f"{base}/traces/{trace_id}", timeout=5)
    except httpx.HTTPError as exc:
        raise OutpostError(
            f"the trace receiver at {base} is unreachable ({type(exc).__name__})",
            hint="is `./dev up --monitor` running?",
        ) from None
    if resp.status_code == 404:
        raise OutpostError(
            f"no spans of trace {trace_id} at {base}",
            hint="spans arrive about a second after the request; only sampled requests are "
            "recorded (`--monitor` records all of them)",
        )
    resp.raise_for_status()
    return format_tree([SpanRecord(**item) for item in resp.json()])
