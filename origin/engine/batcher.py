"""Dynamic batching: coalesce concurrent items for one model version into few ORT calls.

One `Batcher` per loaded model version. Requests `submit` items (one per text input); a worker
coroutine takes the oldest waiting item plus the waiting items closest to it in cost (length),
within `max_batch_size` and the padded token budget, and runs `run_batch` in a thread so the
event loop never blocks. While one batch runs, new items queue up and form the next batch, so a
lone request runs at once and a busy model runs full batches. `max_queue_delay_ms` is only spent
when traffic is visibly arriving (the previous batch was larger than the current one).
The queue is bounded: a full queue raises `QueueFull` (answered 429 + Retry-After).
An optional `BatchTracer` hook sees each request wait and each batch run (the origin plugs
OpenTelemetry in there, `origin/tracing.py`); without one, nothing is traced.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from origin.repository.config import BatchingConfig

log = logging.getLogger("origin.batcher")

R = TypeVar("R")


class Item(Protocol):
    @property
    def cost(self) -> int: ...


I = TypeVar("I", bound=Item)  # noqa: E741


class QueueFull(Exception):
    """The model's queue is full; retry after `retry_after` seconds."""

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
    enqueued: float = field(default_factory=time.perf_counter)
    ticket: Any = None  # the tracer's handle for the request that queued this item


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


class Batcher(Generic[I, R]):
    """Queue + worker for one model version."""

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
        self._queue: deque[_Pending[I]] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._closed = False
        self._last_batch = 0
        self._batch_seconds = 0.01  # moving average, for Retry-After
        self._task = asyncio.get_running_loop().create_task(self._worker(), name=f"batcher-{name}")

    @property
    def queue_size(self) -> int:
        return len(self._queue)

    async def submit(self, items: Sequence[I]) -> list[R]:
        """Queue `items` and wait for their results (in order)."""
        if self._closing:
            raise BatcherClosed(self.name)
        n = len(items)
        if self._queue and len(self._queue) + n > self.config.max_queue_size:
            raise QueueFull(self.retry_after())
        loop = asyncio.get_running_loop()
        ticket = self._tracer.enqueue(n) if self._tracer is not None else None
        pendings = [
            _Pending(it, self._key(it) if self._key else None, loop.create_future(), ticket=ticket)
            for it in items
        ]
        self._queue.extend(pendings)
        self._wake.set()
        if self._observer:
            self._observer.on_queue(len(self._queue))
        try:
            return list(await asyncio.gather(*(p.future for p in pendings)))
        except BaseException:
            for p in pendings:
                p.future.cancel()
            if ticket is not None:
                self._tracer.abandon(ticket)  # type: ignore[union-attr]
            raise

    def retry_after(self) -> int:
        """Seconds until the current queue should have drained (at least 1)."""
        batches = len(self._queue) / max(self.config.max_batch_size, 1) + 1
        return max(1, round(batches * self._batch_seconds + 0.5))

    def _take(self) -> list[_Pending[I]]:
        """The oldest live item plus the waiting items nearest to it in cost, within limits."""
        q = self._queue
        while q and q[0].future.done():
            q.popleft()
        if not q:
            return []
        first = q.popleft()
        batch = [first]
        cfg = self.config
        if cfg.max_batch_size == 1 or not q:
            return batch
        c0 = first.item.cost
        window = [p for p in list(q)[: cfg.max_batch_size * 4] if not p.future.done()]
        if first.key is not None or self._key is not None:
            window = [p for p in window if p.key == first.key]
        window.sort(key=lambda p: abs(p.item.cost - c0))
        width, total = c0, c0
        chosen: set[int] = set()
        for p in window:
            if len(batch) >= cfg.max_batch_size:
                break
            cost = p.item.cost
            budget = max(width, cost) * (len(batch) + 1) if self._padded else total + cost
            if budget > cfg.max_batch_tokens:
                continue
            width, total = max(width, cost), total + cost
            batch.append(p)
            chosen.add(id(p))
        if chosen:
            self._queue = deque(p for p in q if id(p) not in chosen)
        return batch

    async def _worker(self) -> None:
        slots = asyncio.Semaphore(self.config.max_concurrent_batches)
        running: set[asyncio.Task[None]] = set()
        while True:
            if not self._queue:
                if self._closing:
                    break
                self._wake.clear()
                await self._wake.wait()
                continue
            await slots.acquire()  # with one slot: the next batch forms while this one runs
            batch = self._take()
            if not batch:
                slots.release()
                continue
            delay = self.config.max_queue_delay_ms / 1000
            if delay > 0 and len(batch) < min(self._last_batch, self.config.max_batch_size):
                # Traffic is arriving: give stragglers a moment, then top up the batch.
                await asyncio.sleep(delay)
                self._queue.extendleft(reversed(batch))
                batch = self._take()
                if not batch:
                    slots.release()
                    continue
            self._last_batch = len(batch)
            if self._observer:
                self._observer.on_queue(len(self._queue))
            task = asyncio.create_task(self._run(batch, slots))
            running.add(task)
            task.add_done_callback(running.discard)
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        self._closed = True

    async def _run(self, batch: list[_Pending[I]], slots: asyncio.Semaphore) -> None:
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
            results = await loop.run_in_executor(self._executor, run, items)
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
            for p in self._queue:
                if not p.future.done():
                    p.future.set_exception(BatcherClosed(self.name))
            self._queue.clear()
