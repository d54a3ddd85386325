"""The seam's execution-start section: an execution begins once its StartExecution answer is sent.

moto starts an execution's thread inside the StartExecution request, and that thread at once runs
the first state (a Lambda task: the runner, the function's own S3 calls back into this server),
while the request's thread still has to serialise and write the answer. On two busy cores the
two share one GIL, and the answer came 40-50 ms late, after most of the execution. AWS answers
StartExecution at once and runs the execution on its own: here the thread is started as soon as
the answer's last byte is written (`ExecutionWorker.start`, deferred while a request is served
through `start_executions_after_response`). Starts outside a served request (S3 → EventBridge
triggers, in-process tests) are not deferred.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_serving = threading.local()  # .deferred: the starts held back while this thread serves a request


def defer_execution_starts() -> None:
    """`ExecutionWorker.start` waits for the end of the answer when called while serving a request."""
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    original = ExecutionWorker.start

    def start(self: Any) -> None:
        deferred = getattr(_serving, "deferred", None)
        if deferred is None:
            return original(self)
        deferred.append(lambda: original(self))

    ExecutionWorker.start = start  # type: ignore[method-assign]


def start_executions_after_response(app: Callable) -> Callable:
    """WSGI middleware: executions started by a request begin after its body is written."""

    def serve(environ: dict, start_response: Callable) -> Iterable[bytes]:
        _serving.deferred = []
        try:
            body = app(environ, start_response)
        except BaseException:
            _run_deferred()
            raise
        return _then_start(body)

    return serve


def _then_start(body: Iterable[bytes]) -> Iterator[bytes]:
    """The body, then the deferred starts (also when the server stops iterating early and closes it)."""
    try:
        yield from body
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
        _run_deferred()


def _run_deferred() -> None:
    deferred, _serving.deferred = getattr(_serving, "deferred", None) or [], None
    for start in deferred:
        start()
