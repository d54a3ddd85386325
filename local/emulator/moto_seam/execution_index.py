"""The seam's execution lookup: a state machine's executions found by name, not by a scan of all of them.

moto finds an execution by walking its state machine's list: `StepFunctionBackend.describe_execution`
(DescribeExecution and GetExecutionHistory) for its ARN, `StateMachine._handle_name_input_idempotency`
(every StartExecution) for its name. A long-lived stack classifying a folder of photos pays
for every execution it ever ran on each call: ~0.35 ms a call at 10,000 executions, quadratic over
a run. `index_executions_by_name` keeps a name → execution index per state machine, brought up to
date from the list (which only grows) at each lookup; anything the index does not answer, a missing
execution or a repeated name, goes to moto's own code, so errors and idempotency are moto's.
"""
from __future__ import annotations

import functools
import threading
import weakref
from typing import Any

# Beside the state machine, not in it: StartExecution deep-copies the state machine (all but its
# executions list), and an index inside it would take every execution into the copy.
_indexes: weakref.WeakKeyDictionary[Any, tuple[int, dict[str, Any]]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def executions_by_name(state_machine: Any) -> dict[str, Any]:
    """The state machine's executions by name, including any appended since the last call."""
    executions = state_machine.executions
    with _lock:
        indexed, index = _indexes.get(state_machine, (0, {}))
        if len(executions) < indexed:  # the list was replaced: start again
            indexed, index = 0, {}
        for execution in executions[indexed:]:
            index.setdefault(execution.name, execution)
        _indexes[state_machine] = (len(executions), index)
        return index


def index_executions_by_name() -> None:
    """DescribeExecution, GetExecutionHistory and StartExecution's name check through the index."""
    from moto.stepfunctions.models import StateMachine, StepFunctionBackend

    describe = StepFunctionBackend.describe_execution
    check_name = StateMachine._handle_name_input_idempotency

    @functools.wraps(describe)
    def describe_execution(self: Any, execution_arn: str) -> Any:
        self._validate_execution_arn(execution_arn)
        state_machine = self._get_state_machine_for_execution(execution_arn)
        found = executions_by_name(state_machine).get(execution_arn.rsplit(":", 1)[-1])
        if found is not None and found.execution_arn == execution_arn:
            return found
        return describe(self, execution_arn)  # not there: moto's error

    @functools.wraps(check_name)
    def _handle_name_input_idempotency(self: Any, name: str, execution_input: str) -> Any:
        if name not in executions_by_name(self):
            return None
        return check_name(self, name, execution_input)  # a repeated name: moto's answer (the same execution, or an error)

    StepFunctionBackend.describe_execution = describe_execution  # type: ignore[method-assign]
    StateMachine._handle_name_input_idempotency = _handle_name_input_idempotency  # type: ignore[method-assign]
