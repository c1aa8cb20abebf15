"""The batcher coalesces concurrent items within its limits and never delays a lone item."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import pytest

from origin.engine.batcher import Batcher, QueueFull
from tests.origin.conftest import batching


@dataclass(frozen=True)
class Item:
    value: int
    cost: int = 1


class Recorder:
    """run_batch that records batch compositions; can be held to let a queue build up."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, items):
        self.gate.wait(10)
        self.batches.append([i.value for i in items])
        return [i.value * 10 for i in items]


async def test_lone_item_runs_alone_and_gets_its_result(executor):
    rec = Recorder()
    b = Batcher(rec, batching(max_queue_delay_ms=500), executor)
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await b.submit([Item(7)]) == [70]
    assert loop.time() - start < 0.5  # the 500 ms delay was not spent on a lone request
    assert rec.batches == [[7]]
    await b.close()


async def test_waiting_items_are_coalesced_up_to_max_batch_size(executor):
    rec = Recorder()
    rec.gate.clear()
    b = Batcher(rec, batching(), executor)
    first = asyncio.create_task(b.submit([Item(0)]))
    await asyncio.sleep(0.05)  # item 0 is running (held); the rest queue up
    rest = [asyncio.create_task(b.submit([Item(i)])) for i in range(1, 10)]
    await asyncio.sleep(0.05)
    rec.gate.set()
    results = await asyncio.gather(first, *rest)
    assert [r[0] for r in results] == [i * 10 for i in range(10)]
    assert rec.batches[0] == [0]
    assert all(len(batch) <= 4 for batch in rec.batches)
    assert len(rec.batches) == 1 + 3  # 9 waiting items -> batches of 4, 4, 1
    await b.close()


async def test_padded_token_budget_and_length_grouping(executor):
    rec = Recorder()
    rec.gate.clear()
    b = Batcher(rec, batching(max_batch_size=8, max_batch_tokens=40), executor)
    first = asyncio.create_task(b.submit([Item(0, 5)]))
    await asyncio.sleep(0.05)
    # lengths alternate short/long; the oldest (short) item should be grouped with short ones
    costs = [5, 20, 5, 20, 5, 20]
    rest = asyncio.create_task(b.submit([Item(i + 1, c) for i, c in enumerate(costs)]))
    await asyncio.sleep(0.05)
    rec.gate.set()
    await asyncio.gather(first, rest)
    assert rec.batches[1] == [1, 3, 5]  # the three 5-token items (3 x 5 <= 40; a 20 would pad)
    for batch in rec.batches[2:]:
        assert len(batch) * 20 <= 40
    await b.close()


async def test_full_queue_raises_queue_full_with_retry_after(executor):
    rec = Recorder()
    rec.gate.clear()
    b = Batcher(rec, batching(max_queue_size=3, max_batch_size=1), executor)
    running = asyncio.create_task(b.submit([Item(0)]))
    await asyncio.sleep(0.05)
    queued = asyncio.create_task(b.submit([Item(1), Item(2)]))
    await asyncio.sleep(0.01)
    with pytest.raises(QueueFull) as info:
        await b.submit([Item(3), Item(4)])
    assert info.value.retry_after >= 1
    rec.gate.set()
    await asyncio.gather(running, queued)
    assert await b.submit([Item(5)]) == [50]
    await b.close()


async def test_close_drains_queued_items(executor):
    rec = Recorder()
    rec.gate.clear()
    b = Batcher(rec, batching(max_batch_size=2), executor)
    tasks = [asyncio.create_task(b.submit([Item(i)])) for i in range(5)]
    await asyncio.sleep(0.05)
    closing = asyncio.create_task(b.close())
    rec.gate.set()
    await closing
    assert [t.result() for t in tasks] == [[i * 10] for i in range(5)]


async def test_a_failing_batch_fails_only_its_items(executor):
    calls = []

    def run(items):
        calls.append(len(items))
        if any(i.value < 0 for i in items):
            raise RuntimeError("boom")
        return [i.value for i in items]

    b = Batcher(run, batching(max_batch_size=1), executor)
    with pytest.raises(RuntimeError):
        await b.submit([Item(-1)])
    assert await b.submit([Item(3)]) == [3]
    await b.close()
