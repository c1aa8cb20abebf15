"""Fair scheduling in a real origin process (real uvicorn, real ONNX models): one subject's
flood neither holds another subject's request behind it nor locks it out of the queue, and a
lone subject still runs full batches.

The subject is what the origin's caller check stores in `request.state.caller_subject`; here
`bench.lib.subject_origin` plays that check and takes it from a header.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from bench.lib import subject_origin
from bench.lib.procs import Server
from tests.conftest import free_port
from tests.origin.conftest import install_version, write_yaml

LONG = [" ".join(["flood"] * 80) + f" {i}" for i in range(256)]  # cut to the model's 64 tokens
MODELS = {
    # one input a batch: a flood of 4 x 256 inputs takes 1024 batches
    "emb-fair": {"max_batch_size": 1, "max_queue_delay_ms": 0, "max_queue_size": 2048},
    "emb-alone": {"max_batch_size": 4, "max_queue_delay_ms": 0, "max_queue_size": 1024},
    "emb-small-queue": {"max_batch_size": 1, "max_queue_delay_ms": 0, "max_queue_size": 256},
}
SLOW = {"emb-small-queue": {"max_sequence_length": 512}}  # the tiny model's longest inputs


@pytest.fixture(scope="module")
def fair_origin(tiny_src: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("fair-models")
    base = yaml.safe_load((tiny_src / "emb" / "model.yaml").read_text())
    for name, batching in MODELS.items():
        (root / name).mkdir()
        write_yaml(root / name / "model.yaml", {**base, **SLOW.get(name, {}), "batching": batching})
        install_version(tiny_src / "emb", 1, root / name, 1)
    log = tmp_path_factory.mktemp("logs") / "fair-origin.log"
    server = subject_origin.start(free_port(), root, log)
    yield server
    server.stop()
    assert "Traceback" not in server.output(100_000), server.output()


def as_subject(name: str | None) -> dict[str, str]:
    return {subject_origin.HEADER: name} if name else {}


async def queue_size(client: httpx.AsyncClient, model: str) -> float:
    text = (await client.get("/metrics")).text
    m = re.search(rf'^outpost_origin_queue_size{{model="{model}"}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


async def flood_then_victim(url: str, flooder: str | None, victim: str | None) -> int:
    """Four requests of 256 long inputs, then (once the first has queued) one OIP request of
    one short input; how many flood requests had been answered when the victim's answer came."""
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        body = {"model": "emb-fair", "input": LONG}
        flood = [
            asyncio.create_task(
                client.post("/v1/embeddings", json=body, headers=as_subject(flooder))
            )
            for _ in range(4)
        ]
        while await queue_size(client, "emb-fair") < 64:
            assert not any(f.done() for f in flood), "the flood ended before it queued up"
            await asyncio.sleep(0.005)
        infer = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["hi"]}]}
        r = await client.post("/v2/models/emb-fair/infer", json=infer, headers=as_subject(victim))
        assert r.status_code == 200, r.text
        answered = sum(f.done() for f in flood)
        for response in await asyncio.gather(*flood):
            assert response.status_code == 200
        return answered


async def test_another_subjects_request_is_answered_before_the_flood_ends(fair_origin):
    assert await flood_then_victim(fair_origin.url, "sub:flood", "sub:victim") == 0


async def test_without_subjects_the_request_waits_for_the_flood(fair_origin):
    """The control: as one anonymous subject, the same request queues behind the flood."""
    assert await flood_then_victim(fair_origin.url, None, None) >= 1


def batch_sizes(text: str, model: str) -> tuple[float, float]:
    """(batches, inputs) the model ran, from its batch size histogram."""
    values = {}
    for series in ("count", "sum"):
        m = re.search(rf'^outpost_origin_batch_size_{series}{{model="{model}"}} (\S+)$', text, re.M)
        values[series] = float(m.group(1)) if m else 0.0
    return values["count"], values["sum"]


async def test_a_lone_subject_still_runs_full_batches(fair_origin):
    async with httpx.AsyncClient(base_url=fair_origin.url, timeout=120) as client:
        body = {"model": "emb-alone", "input": LONG}
        responses = await asyncio.gather(
            *(
                client.post("/v1/embeddings", json=body, headers=as_subject("sub:alone"))
                for _ in range(2)
            )
        )
        assert all(r.status_code == 200 for r in responses)
        batches, inputs = batch_sizes((await client.get("/metrics")).text, "emb-alone")
    assert inputs == 512
    assert batches <= 512 / 4 + 2  # full batches of 4 but for at most two


async def test_a_flooder_gets_429_while_another_subject_is_still_admitted(fair_origin):
    """A lone flooder may fill the queue (256 inputs); then it is refused, while another
    subject's 128 inputs (its fair share, 256 / 2) are still admitted into the full queue."""
    longest = [" ".join(["flood"] * 600) + f" {i}" for i in range(256)]
    async with httpx.AsyncClient(base_url=fair_origin.url, timeout=120) as client:

        async def send(subject: str, texts: list[str]) -> httpx.Response:
            body = {"model": "emb-small-queue", "input": texts}
            return await client.post("/v1/embeddings", json=body, headers=as_subject(subject))

        flood = asyncio.create_task(send("sub:flood", longest))
        while await queue_size(client, "emb-small-queue") < 240:
            assert not flood.done(), "the flood ended before it queued up"
            await asyncio.sleep(0.002)
        victim, more = await asyncio.gather(
            send("sub:victim", [f"victim {i}" for i in range(128)]),
            # short inputs, queued at once: over the flooder's share while it holds any
            send("sub:flood", [f"more {i}" for i in range(256)]),
        )
        assert (await flood).status_code == 200
    assert more.status_code == 429, more.text[:300]
    assert int(more.headers["retry-after"]) >= 1
    assert victim.status_code == 200, victim.text[:300]
    assert len(victim.json()["data"]) == 128
