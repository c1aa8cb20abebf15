"""Cloudflare Python Worker entry point (`main` in wrangler.toml, through edge/worker/entry.py).

Module-level work is one import of the `workers` SDK; the edge itself is built on the first
request (cold-start and startup-CPU limits) and reused by the isolate afterwards.
"""

from __future__ import annotations

from typing import Any

from workers import Response, WorkerEntrypoint

from edge.limits.durable import quota_object_class

_app: Any = None

# The quota Durable Object (the `QUOTAS` binding in wrangler.toml); workerd finds it here.
QuotaObject = quota_object_class()


def _setting(env: Any, name: str) -> Any:
    """One var or secret of the Worker's `env`, as Python; None when it is not set."""
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
        from edge.config import load_config, setting_names
        from edge.core.app import EdgeApp
        from edge.runtime.workers import WorkersPlatform

        layer = {name: _setting(env, name) for name in setting_names()}
        _app = EdgeApp(load_config(layer), WorkersPlatform(env))
    return _app


class Default(WorkerEntrypoint):
    async def fetch(self, request: Any) -> Any:
        from edge.adapters.worker import request_from_js, response_to_js

        app = edge_app(self.env)
        resp = await app.handle(await request_from_js(request.js_object))
        return Response(response_to_js(resp))
