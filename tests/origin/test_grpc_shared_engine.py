"""gRPC and HTTP share one engine: in-process origins (real uvicorn, real gRPC server, real
tiny model) where the test can hold the inference thread, so items from both transports are
provably coalesced into one batch; plus the seam for per-call checks and a busy gRPC port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from origin.app import create_app
from origin.grpc.checks import CallInfo
from origin.problems import Problem
from origin.settings import OriginSettings
from tests.conftest import ServedApp, free_port
from tests.origin.conftest import install_version


async def edge_proof(info: CallInfo) -> str | None:
    """A stand-in for the caller proof's check (origin.caller, tested with real proofs in
    tests/origin/test_caller_proof.py): health probes pass, other calls need a metadata value,
    and `x-edge-subject` is the subject the call proves."""
    if info.method.startswith("/grpc.health.v1.Health/"):
        return None
    if info.metadata.get("x-edge-proof") != "letmein":
        raise Problem(401, "unauthorized", "this origin only takes calls from the edge")
    subject = info.metadata.get("x-edge-subject")
    return subject if isinstance(subject, str) else None


@pytest.fixture(scope="module")
def served(tiny_src: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root = tmp_path_factory.mktemp("shared-engine-models")
    install_version(tiny_src / "emb", 1, root / "emb", 1)
    settings = OriginSettings(
        models_dir=root, watch=False, inference_threads=1, grpc_port=free_port(), access_log=False
    )
    app = create_app(settings, call_checks=[edge_proof])
    with ServedApp(app) as server:
        server.grpc_target = f"127.0.0.1:{settings.grpc_port}"
        server.app = app
        yield server


def batch_sizes(client: httpx.Client) -> tuple[float, float]:
    """(number of batches, inputs in them) the origin ran for model `emb`."""
    count = total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if line.startswith('outpost_origin_batch_size_count{model="emb"}'):
            count = float(line.split()[-1])
        elif line.startswith('outpost_origin_batch_size_sum{model="emb"}'):
            total = float(line.split()[-1])
    return count, total


def wait_for(condition, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_one_batch_holds_items_from_http_and_grpc(served) -> None:
    registry = served.app.state.registry
    batcher = registry.resolve("emb").batcher
    gate = threading.Event()
    grpc_client = grpcclient.InferenceServerClient(served.grpc_target)
    proof = {"x-edge-proof": "letmein"}

    def over_grpc(text: str) -> np.ndarray:
        inp = grpcclient.InferInput("text", [1], "BYTES")
        inp.set_data_from_numpy(np.array([text.encode()], dtype=object))
        return grpc_client.infer("emb", [inp], headers=proof).as_numpy("embedding")[0]

    def over_http(text: str) -> np.ndarray:
        r = httpx.post(
            served.url + "/v1/embeddings", json={"model": "emb", "input": text}, timeout=30
        )
        assert r.status_code == 200, r.text
        return np.array(r.json()["data"][0]["embedding"], np.float32)

    with httpx.Client(base_url=served.url) as client, ThreadPoolExecutor(3) as pool:
        before = batch_sizes(client)
        # Hold the origin's only inference thread: the first request's batch waits behind it...
        registry.executor.submit(gate.wait)
        try:
            first = pool.submit(over_http, "the first request runs alone")
            wait_for(lambda: registry.executor._work_queue.qsize() == 1, "the first batch")
            # ...so one HTTP and one gRPC request queue up together behind that batch.
            from_http = pool.submit(over_http, "an http request")
            from_grpc = pool.submit(over_grpc, "a grpc request")
            wait_for(lambda: batcher.queue_size == 2, "both requests to queue")
        finally:
            gate.set()
        vectors = [f.result(timeout=30) for f in (first, from_http, from_grpc)]
        after = batch_sizes(client)
    grpc_client.close()
    # Two batches: the first request alone, then the HTTP and the gRPC request together.
    assert (after[0] - before[0], after[1] - before[1]) == (2, 3)
    np.testing.assert_allclose(vectors[2], over_http("a grpc request"), atol=1e-6)
    assert all(abs(np.linalg.norm(v) - 1) < 1e-5 for v in vectors)


def test_call_checks_run_before_every_grpc_call(served) -> None:
    client = grpcclient.InferenceServerClient(served.grpc_target)
    with pytest.raises(InferenceServerException) as info:
        client.is_server_live()
    assert info.value.status() == "StatusCode.UNAUTHENTICATED"
    assert "only takes calls from the edge" in info.value.message()
    assert client.is_server_live(headers={"x-edge-proof": "letmein"})
    client.close()
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(served.grpc_target) as channel:  # health passes the check
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_a_busy_grpc_port_makes_the_origin_unready_with_the_reason(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = OriginSettings(models_dir=tmp_path, watch=False, grpc_port=port)
        with ServedApp(create_app(settings)) as server:
            health = httpx.get(server.url + "/healthz").json()
    assert health["ready"] is False
    assert any(f"cannot listen for gRPC on 127.0.0.1:{port}" in d for d in health["degraded"])


def test_a_grpc_call_is_batched_as_the_subject_its_check_proved(
    served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fair scheduling holds for gRPC callers too: the subject a call check returns reaches the
    batcher, as the HTTP middleware's does."""
    batcher = served.app.state.registry.resolve("emb").batcher
    seen: list[str | None] = []
    submit = batcher.submit

    async def recording(items: Any, subject: str | None = None) -> Any:
        seen.append(subject)
        return await submit(items, subject)

    monkeypatch.setattr(batcher, "submit", recording)
    client = grpcclient.InferenceServerClient(served.grpc_target)
    inp = grpcclient.InferInput("text", [1], "BYTES")
    inp.set_data_from_numpy(np.array([b"whose call is this"], dtype=object))
    for headers in (
        {"x-edge-proof": "letmein", "x-edge-subject": "sub:grpc-user"},
        {"x-edge-proof": "letmein"},
    ):
        client.infer("emb", [inp], headers=headers)
    client.close()
    assert seen == ["sub:grpc-user", None]
