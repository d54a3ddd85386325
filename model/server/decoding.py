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


class DecodeThread(Generic[Raw, Decoded]):
    """One thread running `decode` (which must not raise: it returns its errors) on requests as they arrive."""

    def __init__(self, decode: Callable[[Raw], Decoded], initializer: Callable[[], None]) -> None:
        self.decode, self.initializer = decode, initializer
        self._inbox: queue.SimpleQueue[tuple[Raw, asyncio.Future[Decoded]] | None] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._decode_forever, name="decode", daemon=True)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._inbox.put(None)
            self._thread.join()

    def submit(self, raw: Raw) -> asyncio.Future[Decoded]:
        """The decoded request, once the thread has got to it (called on the loop)."""
        assert self._loop is not None, "the decode thread is not running"
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
