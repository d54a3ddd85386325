"""Dynamic batching: concurrent requests share one model call, run off the event loop.

Like TorchServe's `batch_size`/`max_batch_delay` and LitServe's `max_batch_size`/`batch_timeout`:
a batch is dispatched when it is full, when the delay since its first request has passed, or
at once when no other request is on its way and it is as large as the last batch (so a lone
client never waits for the delay, and clients answered together, coming back a few at a time,
are gathered again instead of being split into a small batch and a large one). Requests that
queued up while a batch ran go at once as the next batch: waiting for more would leave the
forward pass idle, and under load the batches settle into two halves, one running while the
other's clients are answered and send again.

The queue is bounded: beyond `max_queue_size` requests admitted and not yet answered, a new one
is refused at once with `QueueFull` (the server answers 503 ServiceUnavailable, which botocore
retries with backoff) instead of waiting in a queue that only grows under overload.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

BatchHandler = Callable[[list[Item]], Sequence[Result | BaseException]]


@dataclass
class _Pending(Generic[Item, Result]):
    item: Item
    future: asyncio.Future[tuple[Result, int]]


class BatcherClosed(RuntimeError):
    """The server is shutting down and takes no more work."""


class QueueFull(RuntimeError):
    """More requests are waiting than the server is configured to hold."""


class DynamicBatcher(Generic[Item, Result]):
    """Gathers submitted items into batches for `handle_batch`, called in one worker thread.

    `handle_batch` returns one result per item, in order; an exception in that list fails only
    its own item, and an exception raised by `handle_batch` itself fails the whole batch.
    The queue is a deque and the collector sleeps on one future at a time: a request costs one
    future of its own, not a queue getter, a task and a timer each time the collector waits.
    """

    def __init__(self, handle_batch: BatchHandler, max_batch_size: int = 32, max_batch_delay_ms: float = 5.0,
                 max_queue_size: int = 256, worker_initializer: Callable[[], None] | None = None) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_queue_size < 1:
            raise ValueError(f"max_queue_size must be >= 1, got {max_queue_size}")
        if max_batch_delay_ms < 0:
            raise ValueError(f"max_batch_delay_ms must be >= 0, got {max_batch_delay_ms}")
        self.handle_batch = handle_batch
        self.max_batch_size = max_batch_size
        self.max_batch_delay_s = max_batch_delay_ms / 1000
        self.max_queue_size = max_queue_size
        self._admitted = 0  # requests inside `admitted()`: arriving, queued or running
        self._queue: deque[_Pending[Item, Result]] = deque()
        self._wakeup: asyncio.Future[None] | None = None  # set while the collector waits for an item
        self._arriving = 0  # requests announced by `expecting()` but not yet submitted
        self._last_batch_size = 1  # the clients of the last batch are likely to come back together
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict", initializer=worker_initializer)
        self._collector: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._collector = asyncio.create_task(self._collect_forever(), name="batch-collector")

    async def stop(self) -> None:
        if self._collector is not None:
            self._collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._collector
            self._collector = None
        self._worker.shutdown(wait=True)

    @contextmanager
    def admitted(self) -> Iterator[None]:
        """Hold a place in the bounded queue for one request, from arrival to answer; QueueFull if none is left."""
        if self._admitted >= self.max_queue_size:
            raise QueueFull(f"{self._admitted} requests are already waiting (limit {self.max_queue_size}); retry shortly")
        self._admitted += 1
        try:
            yield
        finally:
            self._admitted -= 1

    @contextmanager
    def expecting(self) -> Iterator[None]:
        """Announce a request whose item is still being read, so a batch being formed waits for it."""
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1

    async def submit(self, item: Item) -> tuple[Result, int]:
        """The item's result and the size of the batch it ran in."""
        if self._collector is None:
            raise BatcherClosed("the batcher is not running")
        future: asyncio.Future[tuple[Result, int]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(item, future))
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)
        return await future

    async def _collect_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._queue:  # queued while the last batch ran: they have waited a batch already, and so would the worker
                await self._run(loop, [self._queue.popleft() for _ in range(min(len(self._queue), self.max_batch_size))])
                continue
            await self._next_arrival(loop, None)
            await self._run(loop, await self._fill(loop))

    async def _next_arrival(self, loop: asyncio.AbstractEventLoop, timeout: float | None) -> None:
        """Sleep until an item is queued, or the timeout passes."""
        self._wakeup = wakeup = loop.create_future()
        timer = None if timeout is None else loop.call_later(timeout, _resolve, wakeup)
        try:
            await wakeup
        finally:
            self._wakeup = None
            if timer is not None:
                timer.cancel()

    async def _fill(self, loop: asyncio.AbstractEventLoop) -> list[_Pending[Item, Result]]:
        deadline = time.monotonic() + self.max_batch_delay_s
        batch: list[_Pending[Item, Result]] = []
        while len(batch) < self.max_batch_size:
            if self._queue:
                batch.append(self._queue.popleft())
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self._arriving <= 0 and len(batch) >= self._last_batch_size):
                break
            await self._next_arrival(loop, remaining)
        return batch

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending[Item, Result]]) -> None:
        items = [pending.item for pending in batch]
        self._last_batch_size = len(batch)
        try:
            results: Sequence[Result | BaseException] = await loop.run_in_executor(self._worker, self.handle_batch, items)
            if len(results) != len(items):
                raise RuntimeError(f"batch handler returned {len(results)} results for {len(items)} items")
        except Exception as error:  # the whole batch failed: every caller sees why
            results = [error] * len(items)
        for pending, result in zip(batch, results):
            if pending.future.done():  # the caller went away
                continue
            if isinstance(result, BaseException):
                pending.future.set_exception(result)
            else:
                pending.future.set_result((result, len(batch)))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
