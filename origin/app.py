"""The origin app factory.

    app = create_app(settings, components=[...])

Plug-in hook for other parts (identity, secrets): pass objects satisfying `OriginComponent`:

- `router`: an `APIRouter` (or None), mounted right after the component's `start()` returns
  (so `start()` may still add routes to it); a component that fails to start gets no routes;
- `async start()`: called at start-up, in order, after the models are loaded;
- `async stop()`: called at shutdown, in reverse order;
- `health() -> dict`: `{"ready": bool, "degraded": [reason, ...]}`; `ready: False` makes
  `/v2/health/ready` answer 503, and each reason is listed in `/healthz` under `degraded`.

A component that fails to start is logged and reported as a startup error (the origin keeps
serving models but is not ready). `extra_routers` mounts plain routers with no lifecycle.
Components can reach shared state via `request.app.state` (`settings`, `registry`, `metrics`).

With `settings.grpc_port` set, the OIP gRPC server (`origin.grpc.server.GrpcServer`) is the last
component: it starts once the others have, on the same event loop, registry and batchers.
`call_checks` (see `origin.grpc.checks`) run on every gRPC call before its handler.

`caller` (`origin.caller.CallerVerifier`, built on Vault's secrets by
`origin.identity.component.build_origin_app`) checks the caller proof of every HTTP request (in
the middleware) and gRPC call, and reports in health when no key is loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from fastapi import APIRouter, FastAPI

from origin import __version__, tracing
from origin.api import health, images, oip, openai, rerank
from origin.api.openapi_doc import install_openapi
from origin.api.uploads import DecodePool, body_limit
from origin.gcpolicy import freeze_long_lived
from origin.metrics import OriginMetrics
from origin.middleware import OriginMiddleware
from origin.problems import install_problem_handlers
from origin.repository.registry import ModelRegistry
from origin.repository.watcher import watch_models
from origin.settings import OriginSettings
from origin.tracing import TracingSettings

if TYPE_CHECKING:
    from origin.caller import CallerVerifier
    from origin.grpc.checks import CallCheck

log = logging.getLogger("origin")


@runtime_checkable
class OriginComponent(Protocol):
    """Something with routes, a lifecycle and a health report (see the module docstring)."""

    router: APIRouter | None

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def health(self) -> dict[str, Any]: ...


def create_app(
    settings: OriginSettings | None = None,
    *,
    components: Sequence[OriginComponent] = (),
    extra_routers: Sequence[APIRouter] = (),
    call_checks: Sequence[CallCheck] = (),
    tracing_settings: TracingSettings | None = None,
    caller: CallerVerifier | None = None,
) -> FastAPI:
    """Build the origin FastAPI app; models load (and the watcher starts) in its lifespan.

    Tracing (`OUTPOST_TRACING_*`) starts first in the lifespan, so model versions loaded at
    start-up get their batch tracer; it is process-wide (see `origin/tracing.py`).
    """
    settings = settings or OriginSettings()
    if settings.caller_proof_required and caller is None:
        raise ValueError("caller_proof_required needs Vault: the caller key lives there")
    tracing_settings = tracing_settings or TracingSettings()
    metrics = OriginMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        traced = tracing.start(tracing_settings)
        executor = ThreadPoolExecutor(settings.inference_threads, thread_name_prefix="ort")
        registry = ModelRegistry(settings.models_dir, executor, metrics)
        app.state.registry = registry
        decoder = DecodePool(settings.image_decode_threads, settings.max_pending_images)
        app.state.decoder = decoder
        stop = asyncio.Event()
        watcher: asyncio.Task[None] | None = None
        started: list[OriginComponent] = []
        try:
            await registry.sync()
            if settings.watch:
                watcher = asyncio.create_task(
                    watch_models(
                        registry,
                        stop,
                        debounce_ms=settings.watch_debounce_ms,
                        force_polling=settings.watch_force_polling,
                        after_sync=freeze_long_lived if settings.gc_freeze else None,
                    ),
                    name="model-watcher",
                )
            for comp in app.state.components:
                try:
                    await comp.start()
                    started.append(comp)
                    if comp.router is not None:  # mounted after start: it may add routes there
                        app.include_router(comp.router)
                except Exception as exc:
                    log.exception("component %s failed to start", type(comp).__name__)
                    app.state.startup_error = f"{type(comp).__name__} failed to start: {exc}"
            if settings.gc_freeze:
                freeze_long_lived()
            log.info(
                "origin ready: %d model(s) from %s",
                len(registry.models),
                settings.models_dir,
            )
            yield
        finally:
            stop.set()
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await watcher
            for comp in reversed(started):
                try:
                    await comp.stop()
                except Exception:
                    log.exception("component %s failed to stop", type(comp).__name__)
            await registry.close()
            executor.shutdown(wait=False, cancel_futures=True)
            if traced:
                await asyncio.to_thread(tracing.stop)
            decoder.close()

    app = FastAPI(
        title="Outpost origin",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.components = list(components)
    if caller is not None:
        caller.metrics = metrics
        app.state.components.append(caller)
        call_checks = [caller.check_call, *call_checks]
    if settings.grpc_port is not None:
        from origin.grpc.server import GrpcServer  # grpcio only when gRPC is on

        app.state.components.append(GrpcServer(app.state, call_checks))
    app.state.startup_error = None
    install_problem_handlers(app)
    install_openapi(app)
    app.include_router(openai.router)
    app.include_router(images.router)
    app.include_router(rerank.router)
    app.include_router(oip.router)
    app.include_router(health.router)
    for router in extra_routers:
        app.include_router(router)
    app.add_middleware(
        OriginMiddleware,
        max_body_bytes=settings.max_body_bytes,
        body_limit=body_limit(settings),
        metrics=metrics,
        access_log=settings.access_log,
        caller=caller,
        internal_ports=frozenset({settings.admin_port}) if settings.admin_port else frozenset(),
    )
    return app
