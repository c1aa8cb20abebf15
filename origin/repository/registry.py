"""The model registry: what is on disk, what is loaded, and which version serves each model.

`sync()` reconciles the registry with `models_dir` (called at start-up and by the watcher):
new or changed versions are loaded and warmed up in a thread first, then swapped in by a single
assignment (load before unload); the replaced instance's batcher drains its queue, so in-flight
requests finish on the old one. A failed load is recorded (state `failed`, with file and field)
and whatever served before keeps serving. A removed version folder is unloaded after the served
pointer has moved to another version.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from origin import tracing
from origin.engine.batcher import Batcher
from origin.metrics import ModelObserver, OriginMetrics
from origin.problems import Problem
from origin.repository.config import CONFIG_FILE, ModelConfig, ModelFolderError, load_model_config
from origin.repository.loader import (
    Fingerprint,
    LoadedVersion,
    fingerprint,
    load_version,
    version_dirs,
)

log = logging.getLogger("origin.registry")

State = Literal["loading", "ready", "failed", "unloaded"]
STATES: tuple[State, ...] = ("loading", "ready", "failed", "unloaded")
# On every inference answer: model.yaml's cache_scope, telling the edge whose requests it may
# answer from that cached answer (`subject`: the same caller's only; `shared`: anyone's).
CACHE_SCOPE_HEADER = "X-Outpost-Cache-Scope"


class ServedVersion:
    """A loaded model version with its batcher: what a request runs on."""

    def __init__(self, loaded: LoadedVersion, batcher: Batcher[Any, Any]) -> None:
        self.loaded = loaded
        self.batcher = batcher
        self.name = loaded.name
        self.version = loaded.version
        self.config = loaded.config
        self.pipeline = loaded.pipeline
        self.cache_control = f"public, max-age={loaded.config.cache_ttl_seconds}"
        self.headers = {
            "X-Model-Name": self.name,
            "X-Model-Version": str(self.version),
            "Cache-Control": self.cache_control,
            CACHE_SCOPE_HEADER: loaded.config.cache_scope,
        }


@dataclass
class VersionState:
    version: int
    state: State = "loading"
    error: ModelFolderError | None = None
    served: ServedVersion | None = None
    fingerprint: Fingerprint | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": self.version, "state": self.state}
        if self.error is not None:
            out["error"] = self.error.to_dict()
        return out


@dataclass
class ModelEntry:
    name: str
    path: Path
    config: ModelConfig | None = None
    config_error: ModelFolderError | None = None
    versions: dict[int, VersionState] = field(default_factory=dict)
    current: ServedVersion | None = None


class ModelRegistry:
    """Models under `models_dir`, their versions' states and the version each one serves."""

    def __init__(self, models_dir: Path, executor: Executor, metrics: OriginMetrics) -> None:
        self.models_dir = models_dir
        self.executor = executor
        self.metrics = metrics
        self.models: dict[str, ModelEntry] = {}
        self._lock = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ lookups (request path)
    def resolve(self, name: str, version: int | None = None) -> ServedVersion:
        """The version to run: explicit, else the served one. Raises 404/503 problems."""
        entry = self.models.get(name)
        if entry is None:
            raise Problem(404, "model-not-found", f"model {name!r} does not exist")
        if version is None:
            if entry.current is None:
                raise Problem(
                    503,
                    "model-not-ready",
                    f"model {name!r} has no ready version",
                    headers={"Retry-After": "5"},
                )
            return entry.current
        st = entry.versions.get(version)
        if st is None:
            raise Problem(404, "version-not-found", f"model {name!r} has no version {version}")
        if st.served is None:
            raise Problem(
                503,
                "model-not-ready",
                f"model {name!r} version {version} is {st.state}",
                headers={"Retry-After": "5"},
            )
        return st.served

    def entry(self, name: str) -> ModelEntry:
        entry = self.models.get(name)
        if entry is None:
            raise Problem(404, "model-not-found", f"model {name!r} does not exist")
        return entry

    def ready(self) -> bool:
        return any(e.current is not None for e in self.models.values())

    def describe(self) -> list[dict[str, Any]]:
        """The /v1/models view of every model."""
        out = []
        for name in sorted(self.models):
            e = self.models[name]
            item: dict[str, Any] = {
                "id": name,
                "object": "model",
                "owned_by": "outpost",
                "name": name,
                "task": e.config.task if e.config else None,
                "description": e.config.description if e.config else "",
                "version_policy": e.config.version_policy if e.config else None,
                "cache_scope": self._cache_scope(e),
                "served_version": e.current.version if e.current else None,
                "created": self._created(e),
                "status": "ready" if e.current else ("failed" if self._failed(e) else "loading"),
                "versions": [e.versions[v].to_dict() for v in sorted(e.versions)],
            }
            if e.config_error is not None:
                item["config_error"] = e.config_error.to_dict()
            out.append(item)
        return out

    @staticmethod
    def _created(e: ModelEntry) -> int:
        """The served version's files' time; without one, when model.yaml last changed."""
        if e.current is not None:
            return e.current.loaded.created
        try:
            return int((e.path / CONFIG_FILE).stat().st_mtime)
        except OSError:
            return 0

    @staticmethod
    def _cache_scope(e: ModelEntry) -> str | None:
        """The served version's scope (a version's own model.yaml may set it), else the model's."""
        if e.current is not None:
            return e.current.config.cache_scope
        return e.config.cache_scope if e.config else None

    @staticmethod
    def _failed(e: ModelEntry) -> bool:
        return e.config_error is not None or any(v.state == "failed" for v in e.versions.values())

    # ------------------------------------------------------------------ reconciliation
    async def sync(self) -> None:
        """Bring the registry in line with the folder (serialised; safe to call any time)."""
        async with self._lock:
            on_disk = self._model_dirs()
            for name in [n for n in self.models if n not in on_disk]:
                await self._drop_model(name)
            for name, path in sorted(on_disk.items()):
                entry = self.models.setdefault(name, ModelEntry(name, path))
                await self._sync_model(entry)

    def _model_dirs(self) -> dict[str, Path]:
        out: dict[str, Path] = {}
        try:
            entries = list(os.scandir(self.models_dir))
        except OSError:
            return out
        for e in entries:
            if e.is_dir() and not e.name.startswith((".", "_")):
                path = Path(e.path)
                if (path / CONFIG_FILE).is_file():
                    out[e.name] = path
        return out

    async def _sync_model(self, entry: ModelEntry) -> None:
        try:
            config = await asyncio.to_thread(load_model_config, entry.path / CONFIG_FILE)
        except ModelFolderError as exc:
            if entry.config_error is None or str(entry.config_error) != str(exc):
                log.error("model %s: config rejected, keeping what serves: %s", entry.name, exc)
                self.metrics.load_failures.labels(entry.name).inc()
            entry.config_error = exc
            return
        entry.config_error = None
        entry.config = config
        disk = version_dirs(entry.path)
        for version, vdir in sorted(disk.items()):
            fp = fingerprint(entry.path, vdir)
            st = entry.versions.get(version)
            if st is not None and st.fingerprint == fp:
                continue
            if st is None:
                st = entry.versions[version] = VersionState(version)
            await self._load(entry, st, fp)
        gone = [v for v in entry.versions if v not in disk]
        old_current = entry.current
        entry.current = self._pick(entry, exclude=gone)
        if entry.current is not old_current and entry.current is not None:
            log.info("model %s: now serving version %d", entry.name, entry.current.version)
        for v in gone:
            st = entry.versions.pop(v)
            if st.served is not None:
                log.info("model %s: version %d removed, unloading", entry.name, v)
                self._retire(st.served)
            self._publish_state(entry.name, v, None)
        for st in entry.versions.values():
            self._publish_state(entry.name, st.version, st.state)

    async def _load(self, entry: ModelEntry, st: VersionState, fp: Fingerprint) -> None:
        if st.served is None:
            st.state = "loading"
        log.info("model %s: loading version %d", entry.name, st.version)
        try:
            loaded = await asyncio.to_thread(load_version, entry.name, entry.path, st.version)
        except ModelFolderError as exc:
            st.error, st.fingerprint = exc, fp
            if st.served is None:
                st.state = "failed"
            log.error(
                "model %s: version %d failed to load%s: %s",
                entry.name,
                st.version,
                " (previous instance keeps serving)" if st.served else "",
                exc,
            )
            self.metrics.load_failures.labels(entry.name).inc()
            return
        pipeline = loaded.pipeline
        batcher: Batcher[Any, Any] = Batcher(
            pipeline.run_batch,  # type: ignore[arg-type]
            loaded.config.batching,
            self.executor,
            padded_cost=pipeline.padded_cost,
            key=(lambda it: it.key) if pipeline.keyed_batches else None,
            observer=ModelObserver(
                self.metrics, entry.name, capacity=loaded.config.batching.max_queue_size
            ),
            tracer=tracing.batch_tracer(entry.name, st.version),
            name=f"{entry.name}/{st.version}",
        )
        served = ServedVersion(loaded, batcher)
        old = st.served
        st.served, st.state, st.error, st.fingerprint = served, "ready", None, fp
        if entry.current is old and old is not None:
            entry.current = served  # reload of the served version: swap in place
        if old is not None:
            self._retire(old)
        log.info("model %s: version %d ready", entry.name, st.version)

    @staticmethod
    def _pick(entry: ModelEntry, exclude: Iterable[int] = ()) -> ServedVersion | None:
        assert entry.config is not None
        skip = set(exclude)
        if entry.config.version_policy == "pinned":
            st = entry.versions.get(entry.config.pinned_version or -1)
            return st.served if st is not None and st.version not in skip else None
        ready = [v for v, st in entry.versions.items() if st.served is not None and v not in skip]
        return entry.versions[max(ready)].served if ready else None

    async def _drop_model(self, name: str, reason: str = "folder removed") -> None:
        entry = self.models.pop(name)
        log.info("model %s: %s, unloading", name, reason)
        entry.current = None
        for st in entry.versions.values():
            if st.served is not None:
                self._retire(st.served)
            self._publish_state(name, st.version, None)

    def _retire(self, served: ServedVersion) -> None:
        """Close a replaced instance once its queue has drained (in the background)."""
        task = asyncio.get_running_loop().create_task(served.batcher.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _publish_state(self, name: str, version: int, state: State | None) -> None:
        for s in STATES:
            self.metrics.model_versions.labels(name, str(version), s).set(1 if s == state else 0)

    async def close(self) -> None:
        """Drain and stop every batcher."""
        async with self._lock:
            for name in list(self.models):
                await self._drop_model(name, reason="shutting down")
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
