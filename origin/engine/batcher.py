"""Dynamic batching with fair scheduling: few ORT calls for many requests, fair to every subject.

One `Batcher` per loaded model version. Requests `submit` items (one per text input), with the
subject they come from (the caller the edge verified; None for one anonymous subject). Each
subject waits in its own queue, and a worker coroutine forms one batch at a time:

- **Whose turn.** Every subject is charged the cost (tokens) of the items it gets run. The batch
  starts with the oldest item of the subject charged least; a subject that starts waiting is
  charged like the least served one, so idling earns no credit and a newcomer is served next.
- **Filling.** The batch takes waiting items nearest the first one in cost, subject by subject,
  least charged first (a round robin weighted by tokens): a lone subject fills whole batches,
  and several subjects share each batch by tokens. Keyed batches (tensor shapes, image sizes)
  take only items with the first item's key.
- **Limits.** At most `max_batch_size` items and `max_batch_tokens` (counted after padding), and
  no more work (padded tokens; items for models that do not pad) than runs within
  `max_batch_ms`, as learned from the batches that ran (`origin.engine.batch_time`, with a
  margin for noise). With padding, a batch holds inputs at most twice as long as its first one
  (or up to `SHORT_TOKENS` tokens): a short input never waits for a batch of long ones to be
  padded out around it. So a subject that starts waiting behind another's flood waits for at
  most the batch that is running, within `max_batch_ms`.

While one batch runs, new items queue up and form the next batch, so a lone request runs at once
and a busy model runs full batches. `max_queue_delay_ms` is only spent when traffic is visibly
arriving (the previous batch was larger than the current one).

The queue is bounded and shared fairly (`QueueFull`, answered 429 + Retry-After): a request is
refused when the queue already holds `max_queue_size` items *and* its subject holds more than
its fair share, `max_queue_size` divided by the subjects waiting. A lone subject may use the
whole queue; a subject within its share is still admitted when the queue is full, up to twice
`max_queue_size` in all, so one subject's flood never locks out the others. Routes ask
`check_admission` before they tokenize or decode, so a refused request costs no preparation.

An optional `BatchTracer` hook sees each request wait and each batch run (the origin plugs
OpenTelemetry in there, `origin/tracing.py`); without one, nothing is traced.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from origin.engine.batch_time import BatchTimes
from origin.repository.config import BatchingConfig

log = logging.getLogger("origin.batcher")

R = TypeVar("R")

# With padding, inputs up to this many tokens share batches whatever their lengths; longer ones
# only with inputs at most twice as long as the batch's first (see the module docstring).
SHORT_TOKENS = 32
# Debts of subjects that stopped waiting are forgotten once they are this many.
_MAX_DEBTS = 4096


class Item(Protocol):
    @property
    def cost(self) -> int: ...


I = TypeVar("I", bound=Item)  # noqa: E741


class QueueFull(Exception):
    """The model's queue is full for this subject; retry after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("queue full")
        self.retry_after = retry_after


class BatcherClosed(Exception):
    """The model version was unloaded; the caller should resolve the model again."""


@dataclass(slots=True)
class _Pending(Generic[I]):
    item: I
    key: Any
    future: asyncio.Future[Any]
    subject: Hashable = None
    enqueued: float = field(default_factory=time.perf_counter)
    ticket: Any = None  # the tracer's handle for the request that queued this item


class _Subject:
    """One subject's waiting items and the cost it has been charged (its virtual time)."""

    __slots__ = ("name", "queue", "served")

    def __init__(self, name: Hashable, served: float) -> None:
        self.name = name
        self.queue: deque[_Pending[Any]] = deque()
        self.served = served


class BatchObserver(Protocol):
    def on_batch(self, size: int, seconds: float) -> None: ...
    def on_queue(self, size: int) -> None: ...


class BatchTracer(Protocol):
    """Tracing hook: a request's wait in the queue and the batches that run its items."""

    def enqueue(self, items: int) -> Any:
        """Called in the submitting request's context; the ticket (None: not traced) rides
        with its items."""
        ...

    def begin(self, tickets: Sequence[Any], items: Sequence[Any]) -> Any:
        """A batch starts; `tickets` has one entry per traced item in it. Returns its handle."""
        ...

    def run(self, batch: Any, fn: Callable[[Sequence[Any]], Any], items: Sequence[Any]) -> Any:
        """Call `fn(items)` for the batch (in the worker thread)."""
        ...

    def end(self, batch: Any, error: BaseException | None) -> None: ...

    def abandon(self, ticket: Any) -> None:
        """The request stopped waiting before all its items ran."""
        ...


def _timed(run: Callable[[Sequence[Any]], R], items: Sequence[Any]) -> tuple[R, float]:
    """`run(items)` and the seconds it took (in the worker thread)."""
    start = time.perf_counter()
    return run(items), time.perf_counter() - start


class Batcher(Generic[I, R]):
    """Per-subject queues + worker for one model version."""

    def __init__(
        self,
        run_batch: Callable[[Sequence[I]], list[R]],
        config: BatchingConfig,
        executor: Executor,
        *,
        padded_cost: bool = True,
        key: Callable[[I], Any] | None = None,
        observer: BatchObserver | None = None,
        tracer: BatchTracer | None = None,
        name: str = "model",
    ) -> None:
        self._run_batch = run_batch
        self.config = config
        self._executor = executor
        self._padded = padded_cost
        self._key = key
        self._observer = observer
        self._tracer = tracer
        self.name = name
        self._subjects: dict[Hashable, _Subject] = {}  # the subjects with items waiting
        self._debts: dict[Hashable, float] = {}  # charge of subjects that left ahead of the clock
        self._clock = 0.0  # virtual time: the charge of the subject whose turn came last
        self._count = 0  # items waiting, over all subjects
        self._wake = asyncio.Event()
        self._closing = False
        self._closed = False
        self._last_batch = 0
        self._batch_seconds = 0.01  # moving average, for Retry-After
        self.times = BatchTimes()  # how long batches take, by their work
        self._task = asyncio.get_running_loop().create_task(self._worker(), name=f"batcher-{name}")

    @property
    def queue_size(self) -> int:
        return self._count

    async def submit(self, items: Sequence[I], subject: Hashable = None) -> list[R]:
        """Queue `items` for `subject` and wait for their results (in order)."""
        if self._closing:
            raise BatcherClosed(self.name)
        n = len(items)
        self._admit(subject, n)
        loop = asyncio.get_running_loop()
        ticket = self._tracer.enqueue(n) if self._tracer is not None else None
        pendings = [
            _Pending(
                it,
                self._key(it) if self._key else None,
                loop.create_future(),
                subject,
                ticket=ticket,
            )
            for it in items
        ]
        if pendings:
            self._waiting(subject).queue.extend(pendings)
            self._count += n
            self._wake.set()
        if self._observer:
            self._observer.on_queue(self._count)
        try:
            return list(await asyncio.gather(*(p.future for p in pendings)))
        except BaseException:
            for p in pendings:
                p.future.cancel()
            self._drop_done(subject)
            if ticket is not None:
                self._tracer.abandon(ticket)  # type: ignore[union-attr]
            raise

    def check_admission(self, subject: Hashable = None, n: int = 1) -> None:
        """Raise QueueFull (or BatcherClosed) now if `n` items of `subject` would be refused, so
        a request the queue will not take costs no tokenizing or decoding first. `submit` checks
        again: the queue may change while the request is prepared."""
        if self._closing:
            raise BatcherClosed(self.name)
        self._admit(subject, n)

    def retry_after(self) -> int:
        """Seconds until the current queue should have drained (at least 1)."""
        batches = self._count / max(self.config.max_batch_size, 1) + 1
        return max(1, round(batches * self._batch_seconds + 0.5))

    # ------------------------------------------------------------------ subjects and admission
    def _admit(self, subject: Hashable, n: int) -> None:
        """Refuse (QueueFull) a full queue to a subject over its fair share of it."""
        limit = self.config.max_queue_size
        total = self._count
        if total == 0 or total + n <= limit:
            return
        mine = self._subjects.get(subject)
        held = len(mine.queue) if mine is not None else 0
        waiting = len(self._subjects) + (0 if mine is not None else 1)
        if held + n <= limit / waiting and total + n <= 2 * limit:
            return
        raise QueueFull(self.retry_after())

    def _waiting(self, subject: Hashable) -> _Subject:
        """The subject's queue; a subject that starts waiting is charged at least the clock."""
        s = self._subjects.get(subject)
        if s is None:
            served = max(self._debts.pop(subject, 0.0), self._clock)
            s = self._subjects[subject] = _Subject(subject, served)
        return s

    def _leave(self, s: _Subject) -> None:
        """A subject's queue ran empty: keep what it is ahead of the clock, if anything."""
        del self._subjects[s.name]
        if s.served > self._clock:
            if len(self._debts) >= _MAX_DEBTS:
                self._debts = {k: v for k, v in self._debts.items() if v > self._clock}
                if len(self._debts) >= _MAX_DEBTS:
                    self._debts.clear()
            self._debts[s.name] = s.served

    def _drop_done(self, subject: Hashable) -> None:
        """Forget a subject's items whose requests stopped waiting."""
        s = self._subjects.get(subject)
        if s is None:
            return
        before = len(s.queue)
        s.queue = deque(p for p in s.queue if not p.future.done())
        self._count -= before - len(s.queue)
        if not s.queue:
            self._leave(s)

    # ------------------------------------------------------------------ forming a batch
    def _budget(self) -> float:
        """Work one batch may hold: max_batch_tokens, and what runs within max_batch_ms."""
        budget = float(self.config.max_batch_tokens)
        timed = self.times.most_work(self.config.max_batch_ms / 1000)
        return budget if timed is None else min(budget, timed)

    def _lead(self) -> _Subject | None:
        """The subject charged least (oldest first item on ties); drops finished items."""
        best: _Subject | None = None
        for s in list(self._subjects.values()):
            q = s.queue
            while q and q[0].future.done():
                q.popleft()
                self._count -= 1
            if not q:
                self._leave(s)
            elif best is None or (s.served, q[0].enqueued) < (best.served, best.queue[0].enqueued):
                best = s
        return best

    def _select(self) -> list[_Pending[I]]:
        """The next batch (items stay queued until `_commit`): see the module docstring."""
        lead = self._lead()
        if lead is None:
            return []
        first = lead.queue[0]
        batch: list[_Pending[I]] = [first]
        cfg = self.config
        if cfg.max_batch_size == 1:
            return batch
        c0 = first.item.cost
        widest = max(SHORT_TOKENS, 2 * c0) if self._padded else None
        budget = self._budget()
        window = max(4, 4 * cfg.max_batch_size // len(self._subjects))
        width, total = c0, c0
        # (charge so far, tie-break, subject): the least charged subject gives the next item.
        turns = [
            (s.served + (c0 if s is lead else 0), i, s)
            for i, s in enumerate(self._subjects.values())
        ]
        heapq.heapify(turns)
        offers: dict[int, tuple[list[_Pending[I]], list[int]]] = {}
        while turns and len(batch) < cfg.max_batch_size:
            served, i, s = turns[0]
            if i not in offers:
                offers[i] = (self._offer(s, first, c0, widest, window), [0])
            candidates, at = offers[i]
            picked = None
            while at[0] < len(candidates):
                p = candidates[at[0]]
                at[0] += 1
                cost = p.item.cost
                need = max(width, cost) * (len(batch) + 1) if self._padded else total + cost
                if need <= budget:  # work only grows: an item that does not fit never will
                    picked = p
                    break
            if picked is None:
                heapq.heappop(turns)
                continue
            cost = picked.item.cost
            width, total = max(width, cost), total + cost
            batch.append(picked)
            heapq.heapreplace(turns, (served + cost, i, s))
        return batch

    def _offer(
        self, s: _Subject, first: _Pending[I], c0: int, widest: int | None, window: int
    ) -> list[_Pending[I]]:
        """A subject's items that may join `first`'s batch, nearest to it in cost first."""
        out = [
            p
            for p in itertools.islice(s.queue, window + 1)
            if p is not first
            and not p.future.done()
            and (self._key is None or p.key == first.key)
            and (widest is None or p.item.cost <= widest)
        ]
        out.sort(key=lambda p: abs(p.item.cost - c0))
        return out

    def _commit(self, batch: list[_Pending[I]]) -> float:
        """Take the batch's items out of their queues and charge their subjects; its work."""
        lead = self._subjects[batch[0].subject]
        self._clock = max(self._clock, lead.served)
        taken: dict[Hashable, list[int]] = {}  # subject -> [cost charged, items taken]
        for p in batch:
            t = taken.setdefault(p.subject, [0, 0])
            t[0] += p.item.cost
            t[1] += 1
        chosen = {id(p) for p in batch}
        for name, (charge, count) in taken.items():
            s = self._subjects[name]
            s.served += charge
            q = s.queue
            while count and id(q[0]) in chosen:  # the usual case: the oldest items
                q.popleft()
                count -= 1
            if count:
                s.queue = deque(p for p in q if id(p) not in chosen)
            if not s.queue:
                self._leave(s)
        self._count -= len(batch)
        costs = [p.item.cost for p in batch]
        return float(max(costs) * len(costs) if self._padded else sum(costs))

    # ------------------------------------------------------------------ running batches
    async def _worker(self) -> None:
        slots = asyncio.Semaphore(self.config.max_concurrent_batches)
        running: set[asyncio.Task[None]] = set()
        while True:
            if not self._count:
                if self._closing:
                    break
                self._wake.clear()
                await self._wake.wait()
                continue
            await slots.acquire()  # with one slot: the next batch forms while this one runs
            batch = self._select()
            delay = self.config.max_queue_delay_ms / 1000
            fuller = min(self._last_batch, self.config.max_batch_size)
            if batch and delay > 0 and len(batch) < fuller:
                # Traffic is arriving: give stragglers a moment, then form the batch again.
                await asyncio.sleep(delay)
                batch = self._select()
            if not batch:
                slots.release()
                continue
            work = self._commit(batch)
            self._last_batch = len(batch)
            if self._observer:
                self._observer.on_queue(self._count)
            task = asyncio.create_task(self._run(batch, work, slots))
            running.add(task)
            task.add_done_callback(running.discard)
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        self._closed = True

    async def _run(self, batch: list[_Pending[I]], work: float, slots: asyncio.Semaphore) -> None:
        loop = asyncio.get_running_loop()
        items = [p.item for p in batch]
        run: Callable[[Sequence[I]], list[R]] = self._run_batch
        traced = None
        if self._tracer is not None:
            tickets = [p.ticket for p in batch if p.ticket is not None]
            if tickets:
                traced = self._tracer.begin(tickets, items)
                run = functools.partial(self._tracer.run, traced, self._run_batch)
        start = time.perf_counter()
        try:
            results, ran = await loop.run_in_executor(self._executor, _timed, run, items)
        except Exception as exc:
            if traced is not None:
                self._tracer.end(traced, exc)  # type: ignore[union-attr]
            log.exception("batch of %d failed for %s", len(items), self.name)
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        finally:
            slots.release()
        elapsed = time.perf_counter() - start
        if traced is not None:
            self._tracer.end(traced, None)  # type: ignore[union-attr]
        self._batch_seconds = 0.8 * self._batch_seconds + 0.2 * elapsed
        self.times.observe(work, ran)  # its work, not its wait for a thread
        if self._observer:
            self._observer.on_batch(len(items), elapsed)
        for p, r in zip(batch, results, strict=True):
            if not p.future.done():
                p.future.set_result(r)

    async def close(self, timeout: float = 30.0) -> None:
        """Stop accepting items, finish what is queued, then stop the worker."""
        self._closing = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            for s in self._subjects.values():
                for p in s.queue:
                    if not p.future.done():
                        p.future.set_exception(BatcherClosed(self.name))
            self._subjects.clear()
            self._count = 0
