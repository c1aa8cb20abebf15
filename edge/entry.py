"""Cloudflare Python Worker entry point (`main` in wrangler.toml).

Module-level work is one import of the `workers` SDK; the edge itself is built on the first
request (cold-start and startup-CPU limits) and reused by the isolate afterwards.
"""

from __future__ import annotations

from typing import Any

from workers import Response, WorkerEntrypoint

_app: Any = None


def _setting(env: Any, name: str) -> Any:
    try:
        value = getattr(env, name)
    except AttributeError:
        return None
    if value is None or type(value).__name__ in ("JsNull", "JsUndefined"):
        return None
    to_py = getattr(value, "to_py", None)
    return to_py() if to_py is not None else value


def edge_app(env: Any) -> Any:
    """The isolate's EdgeApp, configured from the Worker's vars and secrets."""
    global _app
    if _app is None:
        from dataclasses import fields

        from edge.app import EdgeApp
        from edge.config import ENV_PREFIX, EdgeConfig, from_mapping
        from edge.runtime.workers import WorkersPlatform

        raw = {}
        for f in fields(EdgeConfig):
            value = _setting(env, ENV_PREFIX + f.name.upper())
            if value is not None:
                raw[f.name] = value
        _app = EdgeApp(from_mapping(raw), WorkersPlatform())
    return _app


class Default(WorkerEntrypoint):
    async def fetch(self, request: Any) -> Any:
        from urllib.parse import urlsplit

        import js
        from pyodide.ffi import to_js

        from edge.messages import EdgeRequest
        from edge.runtime.workers import _obj, js_headers

        app = edge_app(self.env)
        raw = request.js_object
        url = urlsplit(str(raw.url))
        headers = js_headers(raw.headers)
        body = b""
        if raw.method not in ("GET", "HEAD"):
            body = (await raw.arrayBuffer()).to_bytes()
        resp = await app.handle(
            EdgeRequest(
                method=str(raw.method),
                path=url.path or "/",
                query=url.query,
                headers=headers,
                body=body,
                client_ip=headers.get("cf-connecting-ip", ""),
            )
        )
        init = {"status": resp.status, "headers": _obj(resp.headers)}
        if "content-encoding" in resp.headers:
            init["encodeBody"] = "manual"  # the body is already gzip: don't let workerd redo it
        payload = to_js(resp.body) if resp.body else None
        return Response(js.Response.new(payload, _obj(init)))
