"""The seam's TestState execution: moto's `TestStateExecution` ends only at End, Fail, Succeed or a
Choice; a state that goes on (to its `Next`, or to its `Catch`'s `Next`) left the program running and
moto raised RuntimeWarning, and a matching `Retry` slept and ran the task again. AWS reports instead
(TestStateOutput): SUCCEEDED with `nextState` and `output`; CAUGHT_ERROR with `nextState`, the
catcher's `output`, `error` and `cause`; RETRIABLE with `error` and `cause` (TestState does not retry:
`stateConfiguration.retrierRetryCount` says how many attempts were made before); and, at DEBUG and
TRACE, `inspectionData.errorDetails` (`catchIndex`, `retryIndex`, `retryBackoffIntervalSeconds`).

The moto internals read here (tests/unit/test_sfn_test_state_outcomes.py pins them):
- `TestStateExecution._get_start_execution_worker` / `._get_start_execution_worker_comm` and
  `TestCaseExecutionWorkerCommunication.terminated`: the worker and its end, subclassed.
- `TestStateExecutionWorker._get_evaluation_entrypoint` (a `TestStateProgram`, parsed per call: its
  `test_state` is patched per instance, as moto's own TestStatePreprocessor does) and
  `._get_evaluation_environment` (the environment gets the mock: `Environment.mock_test_case`).
- `CatchDecl.catchers` / `CatcherDecl._eval_body` (a catch leaves `CatcherOutcomeCaught` on the stack),
  `RetryDecl.retriers` / `RetrierDecl.max_delay_seconds._eval_body` (the backoff is on the stack before
  the jitter and `time.sleep`), `States.get_error_output` (the error being handled) and
  `Environment.set_stop` (stops `ExecutionState`'s retry loop: its `while env.is_running()`).
- `MaxAttemptsDecl._store_attempt_number` and `BackoffRateDecl._store_next_multiplier` / `.rate`: the
  attempts `stateConfiguration.retrierRetryCount` says were made.
"""
from __future__ import annotations

import dataclasses
import datetime
import functools
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass
class Handled:
    """What the tested state's Catch or Retry did with an error (CAUGHT_ERROR or RETRIABLE)."""

    status: str | None = None
    error: str = ""
    cause: str = ""


def watch_error_handling(state: Any, handled: Handled, retry_count: int = 0) -> None:
    """Record a catch, and stop a retry at the backoff it would wait: AWS's TestState runs one attempt,
    after `retry_count` (stateConfiguration.retrierRetryCount) made before it."""
    catch, retry = getattr(state, "catch", None), getattr(state, "retry", None)
    for index, catcher in enumerate(catch.catchers if catch else ()):
        catcher._eval_body = _watched(catcher._eval_body, functools.partial(_caught, handled=handled, index=index))
    for index, retrier in enumerate(retry.retriers if retry else ()):
        if retry_count:
            retrier.max_attempts._eval_body = _after_attempts(retrier, retry_count)
        delay = retrier.max_delay_seconds
        delay._eval_body = _watched(delay._eval_body, functools.partial(_retriable, handled=handled, index=index))


def _after_attempts(retrier: Any, count: int) -> Callable[[Any], None]:
    """The retrier's MaxAttempts check, as after `count` attempts (moto keeps the attempt number and the
    backoff multiplier in the environment's heap)."""
    body = retrier.max_attempts._eval_body

    def run(env: Any) -> None:
        retrier.max_attempts._store_attempt_number(env, count - 1)
        retrier.backoff_rate._store_next_multiplier(env, retrier.backoff_rate.rate**count)
        body(env)

    return run


def _watched(body: Callable[[Any], None], then: Callable[[Any, dict[str, str]], None]) -> Callable[[Any], None]:
    """`body`, then `then` with the error being handled (read first: a catcher's output resets it)."""

    def run(env: Any) -> None:
        error_output = env.states.get_error_output()
        body(env)
        then(env, error_output)

    return run


def _record(env: Any, handled: Handled, status: str, error_output: dict[str, str], details: dict[str, int]) -> None:
    handled.status, handled.error, handled.cause = status, error_output["Error"], error_output["Cause"]
    env.inspection_data.setdefault("errorDetails", {}).update(details)


def _caught(env: Any, error_output: dict[str, str], *, handled: Handled, index: int) -> None:
    from moto.stepfunctions.parser.asl.component.common.catch.catcher_outcome import CatcherOutcomeCaught

    if isinstance(env.stack[-1], CatcherOutcomeCaught):
        _record(env, handled, "CAUGHT_ERROR", error_output, {"catchIndex": index})


def _retriable(env: Any, error_output: dict[str, str], *, handled: Handled, index: int) -> None:
    """The retrier matched with attempts left: its backoff (IntervalSeconds x BackoffRate^n, at most
    MaxDelaySeconds) is reported, not waited; the jitter after it is skipped, as the program has stopped."""
    backoff = env.stack.pop()
    env.stack.append(0)
    _record(env, handled, "RETRIABLE", error_output, {"retryIndex": index, "retryBackoffIntervalSeconds": int(backoff)})
    env.set_stop(stop_date=datetime.datetime.now(tz=datetime.timezone.utc), cause=handled.cause, error=handled.error)


@functools.cache
def test_state_execution_class() -> Any:
    """TestStateExecution that reports Next, Catch and Retry as AWS does, and runs with a mock."""
    from moto.stepfunctions.parser.api import ExecutionStatus, InspectionLevel
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramRunning, ProgramStopped
    from moto.stepfunctions.parser.backend.test_state.execution import TestStateExecution
    from moto.stepfunctions.parser.backend.test_state.execution_worker import TestStateExecutionWorker

    class Worker(TestStateExecutionWorker):
        mocked: Any = None
        handled: Handled
        retry_count = 0

        def _get_evaluation_entrypoint(self) -> Any:
            program: Any = super()._get_evaluation_entrypoint()  # a TestStateProgram
            watch_error_handling(program.test_state, self.handled, self.retry_count)
            return program

        def _get_evaluation_environment(self) -> Any:
            env = super()._get_evaluation_environment()
            if self.mocked is not None:
                env.mock_test_case = self.mocked
            return env

    class Communication(TestStateExecution.TestCaseExecutionWorkerCommunication):
        def terminated(self) -> None:
            execution: Any = self.execution
            env = _env(execution)
            state = env.program_state()
            if isinstance(state, ProgramRunning):  # gone on to its Next or its catcher's Next
                execution.exec_status = ExecutionStatus.SUCCEEDED
                execution.output = env.states.get_input()
                execution.next_state = state.next_state_name
            elif not isinstance(state, ProgramStopped):  # stopped: a Retry matched (RETRIABLE)
                super().terminated()

    class ReportingTestStateExecution(TestStateExecution):
        def __init__(self, *args: Any, mocked: Any = None, retry_count: int = 0, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.mocked, self.retry_count, self.handled = mocked, retry_count, Handled()

        def _get_start_execution_worker_comm(self) -> Any:
            return Communication(self)

        def _get_start_execution_worker(self) -> Any:
            worker: Any = super()._get_start_execution_worker()
            worker.__class__ = Worker
            worker.mocked, worker.retry_count, worker.handled = self.mocked, self.retry_count, self.handled
            return worker

        def to_test_state_output(self, inspection_level: Any) -> Any:
            env = _env(self)
            if not isinstance(env.program_state(), (ProgramRunning, ProgramStopped)):
                return super().to_test_state_output(inspection_level=inspection_level)
            answer: dict[str, Any] = {"status": self.handled.status or "SUCCEEDED"}
            if self.handled.status != "RETRIABLE":
                answer.update(nextState=self.next_state, output=_json(self.output))
            if self.handled.status is not None:
                answer.update(error=self.handled.error, cause=self.handled.cause)
            if inspection_level in (InspectionLevel.DEBUG, InspectionLevel.TRACE):
                answer["inspectionData"] = env.inspection_data
            return answer

    return ReportingTestStateExecution


def _env(execution: Any) -> Any:
    """The TestStateEnvironment the execution's worker ran the state in."""
    return execution.exec_worker.env


def _json(value: Any) -> str:
    from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

    return to_json_str(value)
