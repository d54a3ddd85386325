"""One polling loop for SageMaker's long waits (endpoints, training jobs)."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for_status(
    describe: Callable[[], dict[str, Any]],
    *,
    status_key: str,
    done: str,
    failed: tuple[str, ...],
    what: str,
    on_status: Callable[[dict[str, Any]], None],
    poll_s: float,
    timeout_s: float,
    failed_error: type[Exception],
    timeout_error: type[Exception],
) -> dict[str, Any]:
    """Call `describe` until its `status_key` is `done`; `failed_error` with FailureReason on a failed status."""
    deadline = time.monotonic() + timeout_s
    while True:
        described = describe()
        status = described[status_key]
        on_status(described)
        if status == done:
            return described
        if status in failed:
            raise failed_error(f"{what} is {status}: {described.get('FailureReason', 'no reason given')}")
        if time.monotonic() > deadline:
            raise timeout_error(f"{what} still {status} after {timeout_s:.0f}s")
        time.sleep(poll_s)
