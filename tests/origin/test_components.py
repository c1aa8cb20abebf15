"""The app factory's component hook: routes, lifecycle, readiness and degraded reasons."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter

from origin.app import OriginComponent, create_app
from origin.settings import OriginSettings


class FakeComponent:
    """A component whose routes appear during start() and whose health is settable."""

    def __init__(self) -> None:
        self.router = APIRouter()
        self.events: list[str] = []
        self.ready = True
        self.reasons: list[str] = []

    async def start(self) -> None:
        self.events.append("start")

        @self.router.get("/hello")
        async def hello() -> dict[str, str]:
            return {"hello": "world"}

    async def stop(self) -> None:
        self.events.append("stop")

    def health(self) -> dict[str, Any]:
        return {"ready": self.ready, "degraded": self.reasons}


async def test_component_routes_lifecycle_and_health(tiny_src: Path, tmp_path: Path):
    shutil.copytree(tiny_src / "iris", tmp_path / "iris")
    comp = FakeComponent()
    assert isinstance(comp, OriginComponent)
    app = create_app(
        OriginSettings(models_dir=tmp_path, watch=False, access_log=False), components=[comp]
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://origin") as client:
            assert (await client.get("/hello")).json() == {"hello": "world"}
            assert (await client.get("/v2/health/ready")).status_code == 200
            comp.reasons = ["vault: unreachable, serving last good secrets"]
            h = (await client.get("/healthz")).json()
            assert h["ready"] and h["status"] == "degraded"
            assert comp.reasons[0] in h["degraded"]
            comp.ready = False
            assert (await client.get("/v2/health/ready")).status_code == 503
            r = await client.post(
                "/v2/models/iris/infer",
                json={
                    "inputs": [
                        {
                            "name": "float_input",
                            "shape": [1, 4],
                            "datatype": "FP32",
                            "data": [1, 2, 3, 4],
                        }
                    ]
                },
            )
            assert r.status_code == 200  # models keep serving whatever a component reports
    assert comp.events == ["start", "stop"]


async def test_no_models_means_not_ready(tmp_path: Path):
    app = create_app(OriginSettings(models_dir=tmp_path, watch=False, access_log=False))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://origin") as client:
            assert (await client.get("/v2/health/live")).status_code == 200
            r = await client.get("/v2/health/ready")
            assert r.status_code == 503 and r.json() == {"ready": False}
            assert (await client.get("/v1/models")).json() == {"object": "list", "data": []}
