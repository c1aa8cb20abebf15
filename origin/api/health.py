"""Health and metrics: `/v2/health/live|ready` (OIP), `/healthz` (JSON summary), `/metrics`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from origin.api.common import no_store

router = APIRouter(tags=["health"])


def health_summary(state: Any) -> dict[str, Any]:
    """Readiness = at least one model ready and every component ready; plus degraded reasons.

    `state` is the app's state (`request.app.state`), so the gRPC server can ask too."""
    registry = state.registry
    degraded: list[str] = []
    components_ready = True
    for comp in state.components:
        try:
            h = comp.health()
        except Exception as exc:  # a broken health probe degrades, it does not crash /healthz
            h = {"ready": False, "degraded": [f"{type(comp).__name__}: health failed: {exc}"]}
        components_ready = components_ready and bool(h.get("ready", True))
        degraded.extend(str(r) for r in h.get("degraded", []))
    for m in registry.describe():
        if m.get("config_error"):
            degraded.append(f"model {m['name']}: config error: {m['config_error']['message']}")
        for v in m["versions"]:
            if v["state"] == "failed":
                degraded.append(f"model {m['name']} version {v['version']}: load failed")
    if state.startup_error:
        degraded.append(f"startup: {state.startup_error}")
    ready = registry.ready() and components_ready and not state.startup_error
    return {
        "status": "ok" if ready and not degraded else ("degraded" if ready else "unready"),
        "live": True,
        "ready": ready,
        "degraded": degraded,
        "models": {
            m["name"]: {"status": m["status"], "served_version": m["served_version"]}
            for m in registry.describe()
        },
    }


@router.get("/v2/health/live")
async def live() -> Response:
    return no_store({"live": True})


@router.get("/v2/health/ready")
async def ready(request: Request) -> Response:
    ok = health_summary(request.app.state)["ready"]
    return no_store({"ready": ok}, 200 if ok else 503)


@router.get("/healthz")
async def healthz(request: Request) -> Response:
    summary = health_summary(request.app.state)
    return no_store(summary, 200 if summary["ready"] else 503)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(
        generate_latest(registry),
        media_type=CONTENT_TYPE_LATEST,
        headers={"Cache-Control": "no-store"},
    )
