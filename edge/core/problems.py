"""RFC 9457 problem+json answers produced by the edge itself."""

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
    413: "Content Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
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
    return EdgeResponse(status, out, json.dumps(body, separators=(",", ":")).encode())
