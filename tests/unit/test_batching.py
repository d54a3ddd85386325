"""The dynamic batcher and the decode thread on their own: batch formation, per-item failures, no wait for a lone request."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from scones.model.server.batching import BatcherClosed, DynamicBatcher, QueueFull


def run(coroutine):
    return asyncio.run(coroutine)


async def submit_all(batcher: DynamicBatcher, items: list) -> list:
    await batcher.start()
    try:
        return await asyncio.gather(*(batcher.submit(item) for item in items), return_exceptions=True)
    finally:
        await batcher.stop()


def test_concurrent_items_share_batches_no_larger_than_the_maximum() -> None:
    seen: list[list[int]] = []

    def double(items: list[int]) -> list[int]:
        seen.append(items)
        time.sleep(0.01)
        return [item * 2 for item in items]

    results = run(submit_all(DynamicBatcher(double, max_batch_size=4, max_batch_delay_ms=50), list(range(10))))
    assert [value for value, _ in results] == [item * 2 for item in range(10)]
    assert max(len(batch) for batch in seen) == 4
    assert len(seen) == 3
    assert [size for _, size in results] == [len(batch) for batch in seen for _ in batch]


def test_an_item_failing_fails_only_itself_and_a_batch_failing_fails_all() -> None:
    def picky(items: list[int]) -> list[int | Exception]:
        return [ValueError(f"odd {item}") if item % 2 else item for item in items]

    results = run(submit_all(DynamicBatcher(picky, max_batch_size=8), [0, 1, 2]))
    assert results[0] == (0, 3) and results[2] == (2, 3)
    assert isinstance(results[1], ValueError) and "odd 1" in str(results[1])

    def broken(items: list[int]) -> list[int]:
        raise RuntimeError("out of memory")

    results = run(submit_all(DynamicBatcher(broken, max_batch_size=8), [0, 1]))
    assert all(isinstance(result, RuntimeError) for result in results)


def test_a_lone_request_does_not_wait_for_the_batch_delay() -> None:
    async def one_request() -> float:
        batcher = DynamicBatcher(lambda items: items, max_batch_size=32, max_batch_delay_ms=2000)
        await batcher.start()
        started = time.perf_counter()
        await batcher.submit("only")
        elapsed = time.perf_counter() - started
        await batcher.stop()
        return elapsed

    assert run(one_request()) < 0.5


def test_a_batch_waits_for_a_request_still_arriving() -> None:
    async def two_requests() -> list:
        batcher = DynamicBatcher(lambda items: items, max_batch_size=32, max_batch_delay_ms=2000)
        await batcher.start()

        async def late() -> tuple:
            with batcher.expecting():
                await asyncio.sleep(0.05)
            return await batcher.submit("late")

        async def early() -> tuple:
            with batcher.expecting():
                await asyncio.sleep(0)
            return await batcher.submit("early")

        results = await asyncio.gather(late(), early())
        await batcher.stop()
        return results

    assert run(two_requests()) == [("late", 2), ("early", 2)]


def test_a_batch_waits_for_as_many_requests_as_the_last_batch_had() -> None:
    async def lockstep_clients() -> list[int]:
        seen: list[int] = []
        batcher = DynamicBatcher(lambda items: seen.append(len(items)) or items, max_batch_size=32, max_batch_delay_ms=2000)
        await batcher.start()
        await asyncio.gather(*(batcher.submit(index) for index in range(4)))

        async def come_back(index: int) -> tuple:
            await asyncio.sleep(0.01 * index)  # the same clients return a few milliseconds apart
            return await batcher.submit(index)

        await asyncio.gather(*(come_back(index) for index in range(4)))
        await batcher.stop()
        return seen

    assert run(lockstep_clients()) == [4, 4]


def test_submitting_to_a_stopped_batcher_is_a_named_error() -> None:
    with pytest.raises(BatcherClosed):
        run(DynamicBatcher(lambda items: items).submit(1))


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        DynamicBatcher(lambda items: items, max_batch_size=0)
    with pytest.raises(ValueError, match="max_batch_delay_ms"):
        DynamicBatcher(lambda items: items, max_batch_delay_ms=-1)
    with pytest.raises(ValueError, match="max_queue_size"):
        DynamicBatcher(lambda items: items, max_queue_size=0)


def test_beyond_the_queue_bound_requests_are_refused_at_once_and_the_rest_answered() -> None:
    async def overload() -> tuple[list, int]:
        batcher = DynamicBatcher(lambda items: time.sleep(0.05) or items, max_batch_size=2, max_queue_size=3)
        await batcher.start()

        async def client(item: int):
            with batcher.admitted():
                return await batcher.submit(item)

        results = await asyncio.gather(*(client(i) for i in range(8)), return_exceptions=True)
        async with asyncio.timeout(5):
            after = await client(99)  # places are given back once answered
        await batcher.stop()
        return results, after[0]

    results, after = run(overload())
    refused = [r for r in results if isinstance(r, QueueFull)]
    answered = [r[0] for r in results if not isinstance(r, BaseException)]
    assert len(refused) == 5 and "limit 3" in str(refused[0])
    assert answered == [0, 1, 2] and after == 99


def test_requests_queued_while_a_batch_runs_go_next_without_waiting_for_the_delay() -> None:
    async def backlog() -> tuple[list[int], float]:
        seen: list[int] = []
        batcher = DynamicBatcher(lambda items: seen.append(len(items)) or time.sleep(0.1) or items,
                                 max_batch_size=32, max_batch_delay_ms=5000)  # fmt: skip
        await batcher.start()
        first = [asyncio.ensure_future(batcher.submit(index)) for index in range(4)]
        await asyncio.sleep(0.05)  # the batch of 4 is running
        started = time.perf_counter()
        await asyncio.gather(*first, *(batcher.submit(index) for index in range(2)))
        elapsed = time.perf_counter() - started
        await batcher.stop()
        return seen, elapsed

    seen, elapsed = run(backlog())
    assert seen == [4, 2]  # not held back to reach the last batch's size
    assert elapsed < 2.5, f"the queued requests waited {elapsed:.1f} s for the batch delay"


@pytest.mark.parametrize("threads", [1, 3])
def test_the_decode_threads_answer_every_request_and_stop(threads: int) -> None:
    from scones.model.server.decoding import DecodeThreads

    async def decode_all() -> list[str]:
        decoder = DecodeThreads(lambda raw: raw.upper(), lambda: None, threads)
        decoder.start(asyncio.get_running_loop())
        try:
            return await asyncio.gather(*(decoder.submit(f"image {index}") for index in range(50)))
        finally:
            decoder.stop()

    assert run(decode_all()) == [f"IMAGE {index}" for index in range(50)]
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("decode-")]
