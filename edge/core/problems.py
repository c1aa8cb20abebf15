"""RFC 9457 problem+json answers produced by the edge itself.

The clients of each protocol read errors their own way: Open Inference Protocol clients
(tritonclient, KServe's) an `error` string, OpenAI's SDKs an `error` object with `message`,
`type` and `param`. `finish_problem` adds the one a path's protocol expects, so one body
serves both a problem+json reader and the protocol's client."""

from __future__ import annotations

import json
from typing import Any

from edge.core.request import EdgeResponse

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    414: "URI Too Long",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def problem(
    status: int,
    slug: str,
    detail: str,
    request_id: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> EdgeResponse:
    """A problem+json response; `detail` must never contain secrets or tokens."""
    body = {
        "type": f"urn:outpost:problem:{slug}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "request_id": request_id,
        **extra,
    }
    out = {
        "content-type": "application/problem+json",
        "cache-control": "no-store",
    }
    if headers:
        out.update(headers)
    return EdgeResponse(status, out, json.dumps(body, separators=(",", ":")).encode(), body)


def finish_problem(resp: EdgeResponse, path: str, trace_id: str) -> None:
    """Complete an edge-made problem answer: its trace id, and the `error` member `path`'s
    protocol reads."""
    body = resp.problem
    if body is None:
        return
    body["trace_id"] = trace_id
    if path == "/v2" or path.startswith("/v2/"):
        body["error"] = body["detail"]
    elif path.startswith("/v1/"):
        body["error"] = {"message": body["detail"], "type": body["type"].rsplit(":", 1)[-1]}
        body["error"]["param"] = None
    resp.body = json.dumps(body, separators=(",", ":")).encode()
