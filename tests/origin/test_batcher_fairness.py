"""The batcher serves subjects fairly: a newcomer is taken into the next batch, not after
another subject's flood; a lone subject still fills whole batches; nobody starves; the queue is
shared by fair share (and a refused request is refused before it is prepared); and a batch holds
at most `max_batch_ms` of learned work."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from origin.api.common import run_on_model
from origin.engine.batcher import SHORT_TOKENS, Batcher, QueueFull
from origin.metrics import OriginMetrics
from origin.problems import Problem
from origin.repository.config import BatchingConfig
from tests.origin.conftest import batching


@dataclass(frozen=True)
class Item:
    owner: str
    index: int
    cost: int = 10


class Engine:
    """run_batch recording each batch's items; the first batch is held until `release()`, so
    the queue builds up behind it as behind a long batch."""

    def __init__(self) -> None:
        self.batches: list[list[Item]] = []
        self.started = threading.Event()
        self.gate = threading.Event()

    def __call__(self, items):
        self.started.set()
        self.gate.wait(10)
        self.batches.append(list(items))
        return [(it.owner, it.index) for it in items]

    def release(self) -> None:
        self.gate.set()

    def owners(self) -> list[list[str]]:
        return [[it.owner for it in batch] for batch in self.batches]


def cfg(**kw) -> BatchingConfig:
    return batching(**{"max_batch_tokens": 100_000, "max_queue_size": 1000, **kw})


def items(owner: str, n: int, cost: int = 10) -> list[Item]:
    return [Item(owner, i, cost) for i in range(n)]


async def hold_first_batch(batcher: Batcher, engine: Engine, owner: str = "flood") -> asyncio.Task:
    """Submit one item and wait until it runs (held), so what follows queues behind it."""
    task = asyncio.create_task(batcher.submit(items(owner, 1), owner))
    await asyncio.to_thread(engine.started.wait, 5)
    return task


async def queued(*coros) -> list[asyncio.Task]:
    """Start submissions in this order and let each reach the queue; a refusal (QueueFull)
    is raised here."""
    tasks = []
    for coro in coros:
        task = asyncio.create_task(coro)
        await asyncio.sleep(0)
        if task.done():
            task.result()
        tasks.append(task)
    await asyncio.sleep(0.01)
    return tasks


async def test_a_newcomer_is_taken_into_the_next_batch_not_after_the_flood(executor):
    engine = Engine()
    b = Batcher(engine, cfg(), executor)
    first = await hold_first_batch(b, engine)
    flood, victim = await queued(
        b.submit(items("flood", 40), "flood"), b.submit(items("victim", 1), "victim")
    )
    engine.release()
    assert await victim == [("victim", 0)]
    await asyncio.gather(first, flood)
    owners = engine.owners()
    assert owners[0] == ["flood"]
    assert "victim" in owners[1], owners  # the batch right after the one that was running
    assert sum(len(o) for o in owners) == 42
    await b.close()


async def test_without_subjects_the_same_requests_queue_in_arrival_order(executor):
    """The control: one anonymous subject is one queue, so the late request runs last."""
    engine = Engine()
    b = Batcher(engine, cfg(), executor)
    first = asyncio.create_task(b.submit(items("flood", 1)))
    await asyncio.to_thread(engine.started.wait, 5)
    flood, late = await queued(b.submit(items("flood", 40)), b.submit(items("victim", 1)))
    engine.release()
    await asyncio.gather(first, flood, late)
    assert engine.owners()[-1][-1] == "victim"
    await b.close()


async def test_a_short_request_does_not_wait_for_long_ones_padded_around_it(executor):
    engine = Engine()
    b = Batcher(engine, cfg(max_batch_size=8), executor)
    first = await hold_first_batch(b, engine)
    flood, victim = await queued(
        b.submit(items("flood", 24, cost=128), "flood"),
        b.submit(items("victim", 1, cost=12), "victim"),
    )
    engine.release()
    await asyncio.gather(first, flood, victim)
    assert engine.owners()[1] == ["victim"]  # its own short batch, next
    await b.close()


async def test_short_inputs_of_different_lengths_still_share_batches(executor):
    engine = Engine()
    b = Batcher(engine, cfg(max_batch_size=8), executor)
    first = await hold_first_batch(b, engine)
    costs = [3, SHORT_TOKENS, 7, SHORT_TOKENS - 5, 4, 20, 9, 16]
    rest = await queued(*(b.submit([Item(f"s{i}", 0, c)], f"s{i}") for i, c in enumerate(costs)))
    engine.release()
    await asyncio.gather(first, *rest)
    assert len(engine.batches) == 2 and len(engine.batches[1]) == 8
    await b.close()


@pytest.mark.parametrize("subject", ["alone", None])
async def test_a_lone_subject_still_forms_full_batches(executor, subject):
    engine = Engine()
    b = Batcher(engine, cfg(max_batch_size=8), executor)
    first = asyncio.create_task(b.submit(items("alone", 1), subject))
    await asyncio.to_thread(engine.started.wait, 5)
    reqs = await queued(*(b.submit(items("alone", 4), subject) for _ in range(10)))
    engine.release()
    await asyncio.gather(first, *reqs)
    assert [len(batch) for batch in engine.batches] == [1, 8, 8, 8, 8, 8]
    await b.close()


async def test_subjects_share_batches_by_tokens_and_nobody_starves(executor):
    """Three subjects with backlogs: the cheap ones get more items per batch (fair by tokens),
    and the expensive one still gets items into the early batches."""
    engine = Engine()
    b = Batcher(engine, cfg(max_batch_size=6), executor)
    first = await hold_first_batch(b, engine, "a")
    reqs = await queued(
        b.submit(items("a", 30, cost=30), "a"),
        b.submit(items("b", 30, cost=5), "b"),
        b.submit(items("c", 30, cost=5), "c"),
    )
    engine.release()
    await asyncio.gather(first, *reqs)
    owners = engine.owners()
    early = [o for batch in owners[1:6] for o in batch]
    assert {"a", "b", "c"} <= set(early)  # everyone is served from the start
    assert early.count("b") > 2 * early.count("a")  # b's items are a sixth of a's tokens
    last = {name: max(i for i, batch in enumerate(owners) if name in batch) for name in "abc"}
    assert last["b"] < last["a"] and last["c"] < last["a"]
    await b.close()


async def test_a_subject_that_went_quiet_earns_no_credit(executor):
    """A subject served a lot that leaves and comes back does not jump ahead of one that kept
    waiting with less service."""
    engine = Engine()
    b = Batcher(engine, cfg(max_batch_size=2), executor)
    first = await hold_first_batch(b, engine, "x")
    heavy, light = await queued(
        b.submit(items("heavy", 6, cost=50), "heavy"), b.submit(items("light", 1, cost=5), "light")
    )
    engine.release()
    await asyncio.gather(first, heavy, light)
    engine.batches.clear()
    engine.gate.clear()
    engine.started.clear()
    held = await hold_first_batch(b, engine, "y")
    again = await queued(
        b.submit(items("heavy", 2, cost=50), "heavy"), b.submit(items("light", 2, cost=5), "light")
    )
    engine.release()
    await asyncio.gather(held, *again)
    assert engine.owners()[1][0] == "light"  # heavy's earlier service still counts
    await b.close()


async def test_a_flooder_that_filled_the_queue_gets_429_while_others_are_admitted(executor):
    engine = Engine()
    b = Batcher(engine, cfg(max_batch_size=1, max_queue_size=8), executor)
    first = await hold_first_batch(b, engine)
    flood = await queued(b.submit(items("flood", 8), "flood"))  # alone, it may fill the queue
    with pytest.raises(QueueFull) as refused:
        await b.submit(items("flood", 1), "flood")
    assert refused.value.retry_after >= 1
    # The queue is full, but the victim holds less than its share (8 / 2 subjects).
    victim = await queued(
        b.submit(items("victim", 1), "victim"), b.submit(items("victim", 3), "victim")
    )
    assert b.queue_size == 12
    with pytest.raises(QueueFull):
        await b.submit(items("victim", 1), "victim")  # now over its share
    with pytest.raises(QueueFull):
        await b.submit(items("flood", 1), "flood")
    engine.release()
    await asyncio.gather(first, *flood, *victim)
    await b.close()


async def test_the_queue_holds_at_most_twice_max_queue_size(executor):
    engine = Engine()
    b = Batcher(engine, cfg(max_batch_size=1, max_queue_size=8), executor)
    first = await hold_first_batch(b, engine)
    admitted = await queued(b.submit(items("flood", 8), "flood"))
    # Newcomers each within their share (8 / subjects waiting): 4, then 2, then 2.
    for name, n in (("s0", 4), ("s1", 2), ("s2", 2)):
        admitted += await queued(b.submit(items(name, n), name))
    assert b.queue_size == 16
    with pytest.raises(QueueFull):  # within its share (8 / 5), but the queue is at twice 8
        await b.submit(items("s3", 1), "s3")
    engine.release()
    await asyncio.gather(first, *admitted)
    await b.close()


async def test_a_cancelled_request_gives_its_share_back(executor):
    engine = Engine()
    b = Batcher(engine, cfg(max_batch_size=1, max_queue_size=4), executor)
    first = await hold_first_batch(b, engine)
    (gone,) = await queued(b.submit(items("flood", 4), "flood"))
    gone.cancel()
    await asyncio.sleep(0.01)
    assert b.queue_size == 0
    (back,) = await queued(b.submit(items("flood", 4), "flood"))
    engine.release()
    assert len(await back) == 4
    await asyncio.gather(first)
    await b.close()


def timed_engine(seconds_per_token: float):
    """run_batch that takes `seconds_per_token` per padded token (sleeps, so never less)."""
    sizes: list[int] = []

    def run(batch):
        sizes.append(len(batch))
        time.sleep(seconds_per_token * max(it.cost for it in batch) * len(batch))
        return [(it.owner, it.index) for it in batch]

    return run, sizes


@pytest.mark.parametrize(("max_batch_ms", "most"), [(50, 2), (60_000, 12)])
async def test_a_batch_holds_at_most_max_batch_ms_of_learned_work(executor, max_batch_ms, most):
    # 2 ms per token: an item of 10 tokens is 20 ms of work, so 50 ms holds at most 2 of them.
    run, sizes = timed_engine(0.002)
    b = Batcher(run, cfg(max_batch_size=16, max_batch_ms=max_batch_ms), executor)
    await b.submit(items("warm", 1), "warm")  # one batch teaches the batcher the time per token
    fixed, per_token = b.times.fit()
    assert fixed == 0 and per_token >= 0.002  # one batch size so far: the average per token
    await b.submit(items("flood", 12), "flood")
    assert max(sizes[1:]) == most
    await b.close()


async def test_a_request_over_its_share_is_refused_before_it_is_prepared(executor):
    """The route's admission check comes before `prepare` (tokenizing, image decoding), so a
    flooder the queue refuses spends no origin CPU on inputs that will not run; a subject
    within its share is prepared and admitted as before."""
    engine = Engine()
    b = Batcher(engine, cfg(max_batch_size=1, max_queue_size=8), executor)
    served = SimpleNamespace(name="m", version=1, batcher=b)
    # A stand-in for the model registry: only its lookup and its metrics are used here.
    registry = SimpleNamespace(resolve=lambda name, version: served, metrics=OriginMetrics())
    prepared: list[str] = []

    def prepare_for(owner: str):
        async def prepare(_served):
            prepared.append(owner)
            return items(owner, 1), None

        return prepare

    first = await hold_first_batch(b, engine)
    flood = await queued(b.submit(items("flood", 8), "flood"))
    with pytest.raises(Problem) as refused:
        await run_on_model(registry, "m", None, prepare_for("flood"), "flood")
    assert refused.value.status == 429
    assert int(refused.value.headers["Retry-After"]) >= 1
    assert prepared == []
    victim = asyncio.create_task(run_on_model(registry, "m", None, prepare_for("victim"), "victim"))
    await asyncio.sleep(0.01)
    assert prepared == ["victim"] and b.queue_size == 9
    engine.release()
    _, _, results = await victim
    assert results == [("victim", 0)]
    await asyncio.gather(first, *flood)
    await b.close()
