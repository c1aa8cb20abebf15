"""The Workers adapter: a `fetch` event's request to and from `EdgeApp`.

`request_from_fetch` is plain Python (tested beside the ASGI adapter with the same requests);
`request_from_js` and `response_to_js` touch the JS objects and import `js` only when called.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from edge.core.request import EdgeRequest, EdgeResponse, build_request


def request_from_fetch(
    method: str, url: str, headers: Iterable[tuple[str, str]], body: bytes
) -> EdgeRequest:
    """The edge's request for a Worker's request: `url` as the runtime serialised it (its path
    and query still percent-encoded); the client's address from Cloudflare's
    `CF-Connecting-IP`, which the client cannot set."""
    parts = urlsplit(url)
    req = build_request(method, parts.path or "/", parts.query, headers, body, "")
    req.client_ip = req.headers.get("cf-connecting-ip", "")
    req.scheme = parts.scheme or "https"
    return req


async def request_from_js(raw: Any) -> EdgeRequest:
    """`request_from_fetch` for a JS `Request`."""
    body = b""
    method = str(raw.method)
    if method not in ("GET", "HEAD"):
        body = (await raw.arrayBuffer()).to_bytes()
    pairs = [(str(pair[0]), str(pair[1])) for pair in raw.headers.entries()]
    return request_from_fetch(method, str(raw.url), pairs, body)


def response_to_js(resp: EdgeResponse) -> Any:
    """A JS `Response` for `resp` (a gzip body is sent as it is: workerd must not encode it
    again)."""
    import js
    from pyodide.ffi import to_js

    from edge.runtime.workers import js_object

    init: dict[str, Any] = {"status": resp.status, "headers": js_object(resp.headers)}
    if "content-encoding" in resp.headers:
        init["encodeBody"] = "manual"
    payload = to_js(resp.body) if resp.body else None
    return js.Response.new(payload, js_object(init))
