"""input_fn off the event loop, overlapping the forward pass, for a few microseconds of loop time a request.

A ThreadPoolExecutor costs the loop a work item, a lock and a semaphore per submit (a third of the
event loop's samples at c=32 in py-spy); here a request is one put on a C queue, and the thread
hands decoded requests back to the loop in one call for everything it decoded in a row.
"""
from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

Raw = TypeVar("Raw")
Decoded = TypeVar("Decoded")


class DecodeThreads(Generic[Raw, Decoded]):
    """Threads running `decode` (which must not raise: it returns its errors) on requests as they arrive."""

    def __init__(self, decode: Callable[[Raw], Decoded], initializer: Callable[[], None], count: int = 1) -> None:
        self.decode, self.initializer = decode, initializer
        self._inbox: queue.SimpleQueue[tuple[Raw, asyncio.Future[Decoded]] | None] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads = [threading.Thread(target=self._decode_forever, name=f"decode-{index}", daemon=True)
                         for index in range(count)]  # fmt: skip

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        running = [thread for thread in self._threads if thread.is_alive()]
        for _ in running:
            self._inbox.put(None)  # one each: a thread takes one and ends
        for thread in running:
            thread.join()

    def submit(self, raw: Raw) -> asyncio.Future[Decoded]:
        """The decoded request, once a thread has got to it (called on the loop)."""
        assert self._loop is not None, "the decode threads are not running"
        future: asyncio.Future[Decoded] = self._loop.create_future()
        self._inbox.put((raw, future))
        return future

    def _decode_forever(self) -> None:
        assert self._loop is not None
        self.initializer()
        while True:
            job = self._inbox.get()
            done: list[tuple[asyncio.Future[Decoded], Decoded]] = []
            while job is not None:
                done.append((job[1], self.decode(job[0])))
                try:
                    job = self._inbox.get_nowait()
                except queue.Empty:
                    break
            if done:
                self._loop.call_soon_threadsafe(_deliver, done)
            if job is None:
                return


def _deliver(done: list[tuple[asyncio.Future[Decoded], Decoded]]) -> None:
    for future, decoded in done:
        if not future.done():  # the caller went away
            future.set_result(decoded)
