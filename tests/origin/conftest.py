"""Origin test fixtures: tiny real ONNX models and real uvicorn origin processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml

from origin.repository.config import BatchingConfig
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Source folders of tiny models (built once per session); tests copy what they serve."""
    from outpost.modelkit.tiny import (
        build_tiny_classifier,
        build_tiny_embeddings,
        build_tiny_tensor,
    )

    root = tmp_path_factory.mktemp("tiny-src")
    build_tiny_embeddings(root / "emb", version=1, seed=0)
    build_tiny_embeddings(root / "emb", version=2, seed=1)
    build_tiny_classifier(root / "cls", version=1, seed=0)
    build_tiny_tensor(root / "iris", version=1)
    return root


def install_version(src_model: Path, src_version: int, dst_model: Path, dst_version: int) -> Path:
    """Copy a version folder in via a hidden temp folder and a rename (as real writers do)."""
    dst_model.mkdir(parents=True, exist_ok=True)
    if not (dst_model / "model.yaml").exists():
        shutil.copy2(src_model / "model.yaml", dst_model / "model.yaml")
    tmp = dst_model / f".tmp-{dst_version}"
    shutil.copytree(src_model / str(src_version), tmp)
    final = dst_model / str(dst_version)
    os.rename(tmp, final)
    return final


def write_yaml(path: Path, data: dict) -> None:
    tmp = path.with_name(".tmp-" + path.name)
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    os.replace(tmp, path)


class OriginProcess:
    """`python -m origin` in a subprocess on a free port, logging to a file; with `grpc=True`
    it serves OIP gRPC on a second free port too (`grpc_target`)."""

    def __init__(self, models_dir: Path, log_path: Path, *, grpc: bool = False, **env: str) -> None:
        self.models_dir = models_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.grpc_port = free_port() if grpc else None
        self.grpc_target = f"127.0.0.1:{self.grpc_port}" if grpc else None
        self.log_path = log_path
        self.env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "OUTPOST_ORIGIN_WATCH_DEBOUNCE_MS": "100",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> OriginProcess:
        self._log = self.log_path.open("wb")
        grpc = ["--grpc-port", str(self.grpc_port)] if self.grpc_port else []
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "origin",
                "--port",
                str(self.port),
                *grpc,
                "--models-dir",
                str(self.models_dir),
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"origin exited early:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/v2/health/live", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"origin did not start in {timeout}s:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def serve(self) -> Iterator[OriginProcess]:
        """A fixture's body: start, yield, stop, then no traceback may be in the log."""
        self.start()
        yield self
        self.stop()
        assert "Traceback" not in self.logs(), self.logs()[-4000:]


@pytest.fixture(scope="session")
def served_dir(tiny_src: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared server's model repository: tiny models plus variants for limit tests."""
    root = tmp_path_factory.mktemp("served-models")
    install_version(tiny_src / "emb", 1, root / "emb", 1)
    install_version(tiny_src / "cls", 1, root / "cls", 1)
    install_version(tiny_src / "iris", 1, root / "iris", 1)
    base = yaml.safe_load((tiny_src / "emb" / "model.yaml").read_text())
    (root / "emb-strict").mkdir()
    write_yaml(
        root / "emb-strict" / "model.yaml",
        {**base, "truncation": "reject", "max_sequence_length": 16},
    )
    install_version(tiny_src / "emb", 1, root / "emb-strict", 1)
    (root / "emb-tiny-queue").mkdir()
    write_yaml(
        root / "emb-tiny-queue" / "model.yaml",
        {
            **base,
            "batching": {"max_batch_size": 1, "max_queue_delay_ms": 0, "max_queue_size": 16},
        },
    )
    install_version(tiny_src / "emb", 1, root / "emb-tiny-queue", 1)
    (root / "cls-top2").mkdir()
    write_yaml(
        root / "cls-top2" / "model.yaml",
        {
            "task": "text-classification",
            "labels": ["sad", "meh", "glad"],
            "top_k": 2,
        },
    )
    install_version(tiny_src / "cls", 1, root / "cls-top2", 1)
    (root / "emb-shared").mkdir()  # answers anyone's repeat from the edge's cache
    write_yaml(root / "emb-shared" / "model.yaml", {**base, "cache_scope": "shared"})
    install_version(tiny_src / "emb", 1, root / "emb-shared", 1)
    (root / "emb-mrl").mkdir()  # Matryoshka: `dimensions` may cut its 32 values to 16 or 8
    write_yaml(root / "emb-mrl" / "model.yaml", {**base, "matryoshka_dimensions": [16, 8]})
    install_version(tiny_src / "emb", 1, root / "emb-mrl", 1)
    return root


@pytest.fixture(scope="session")
def origin(served_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OriginProcess]:
    """One real origin process shared by the read-only tests (HTTP and gRPC)."""
    log = tmp_path_factory.mktemp("logs") / "origin.log"
    yield from OriginProcess(
        served_dir,
        log,
        grpc=True,
        OUTPOST_ORIGIN_MAX_BODY_BYTES="65536",
        OUTPOST_ORIGIN_MAX_INPUTS_PER_REQUEST="32",
    ).serve()


@pytest.fixture
def client(origin: OriginProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=origin.url, timeout=30) as c:
        yield c


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    """The thread pool in-process batcher tests run their batches in."""
    with ThreadPoolExecutor(2) as ex:
        yield ex


def batching(**kw: object) -> BatchingConfig:
    """Limits for in-process batcher tests: no queue delay, max_batch_ms out of the way (a batch
    a test holds would look slow), the rest as given."""
    base = {
        "max_batch_size": 4,
        "max_queue_delay_ms": 0,
        "max_batch_tokens": 1000,
        "max_batch_ms": 60_000,
        "max_queue_size": 100,
    }
    return BatchingConfig(**{**base, **kw})  # type: ignore[arg-type]
