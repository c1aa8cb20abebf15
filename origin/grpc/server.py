"""The origin's gRPC server: an origin component on its own port, in the origin's event loop.

`inference.GRPCInferenceService` (origin.grpc.service) and the standard `grpc.health.v1.Health`
service, whose overall status ("") and the inference service's follow the origin's readiness
(`/v2/health/ready`), refreshed every second. Messages over `max_body_bytes` (the HTTP body
limit) are refused by gRPC with RESOURCE_EXHAUSTED before any of our code runs. A port that
cannot be bound makes the origin unready, with the reason in `/healthz`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from origin.api.health import health_summary
from origin.grpc.checks import CallCheck, CheckInterceptor
from origin.grpc.protocol import SERVICE_NAME
from origin.grpc.service import InferenceService

log = logging.getLogger("origin.grpc")
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
HEALTH_REFRESH_SECONDS = 1.0
STOP_GRACE_SECONDS = 5.0


class GrpcServer:
    """OriginComponent serving OIP gRPC and health; `state` is the origin app's state."""

    router = None

    def __init__(self, state: Any, checks: Sequence[CallCheck] = ()) -> None:
        self.state = state
        self.checks = list(checks)
        self.port: int | None = None
        self.health_servicer = health.aio.HealthServicer()
        self._server: grpc.aio.Server | None = None
        self._refresh: asyncio.Task[None] | None = None

    async def start(self) -> None:
        settings = self.state.settings
        server = grpc.aio.server(
            interceptors=[CheckInterceptor(self.checks)] if self.checks else None,
            options=[
                ("grpc.max_receive_message_length", settings.max_body_bytes),
                # Never share the port with another process (gRPC sets SO_REUSEPORT by default).
                ("grpc.so_reuseport", 0),
            ],
        )
        service = InferenceService(self.state)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE_NAME, service.handlers()),)
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health_servicer, server)
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        address = f"{host}:{settings.grpc_port}"
        try:
            self.port = server.add_insecure_port(address)
        except RuntimeError:
            raise RuntimeError(
                f"cannot listen for gRPC on {address} (in use? set OUTPOST_ORIGIN_GRPC_PORT)"
            ) from None
        await self._publish()  # NOT_SERVING until the server runs
        await server.start()
        self._server = server
        await self._publish()
        self._refresh = asyncio.create_task(self._refresh_health(), name="grpc-health")
        log.info("gRPC (OIP v2 + health) listening on %s:%d", settings.host, self.port)

    async def _publish(self) -> None:
        status = _SERVING if health_summary(self.state)["ready"] else _NOT_SERVING
        for name in ("", SERVICE_NAME):
            await self.health_servicer.set(name, status)

    async def _refresh_health(self) -> None:
        while True:
            await asyncio.sleep(HEALTH_REFRESH_SECONDS)
            try:
                await self._publish()
            except Exception:
                log.exception("gRPC health refresh failed")

    async def stop(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh
        await self.health_servicer.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(STOP_GRACE_SECONDS)
            self._server = None

    def health(self) -> dict[str, Any]:
        if self._server is None:
            return {"ready": False, "degraded": ["grpc: server not running"]}
        return {"ready": True, "degraded": []}
