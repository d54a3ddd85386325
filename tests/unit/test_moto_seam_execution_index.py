"""What moto_seam/execution_index.py relies on in moto, and its index on plain objects."""
from __future__ import annotations

import inspect
from types import SimpleNamespace

from scones.local.emulator.moto_seam.execution_index import executions_by_name


def _unwrapped(function):
    return getattr(function, "__wrapped__", function)


def test_moto_finds_executions_by_scanning_the_state_machine_s_list():
    from moto.stepfunctions.models import StateMachine, StepFunctionBackend
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    describe = inspect.getsource(_unwrapped(StepFunctionBackend.describe_execution))
    assert "state_machine.executions" in describe and "_get_state_machine_for_execution" in describe
    check = inspect.getsource(_unwrapped(StateMachine._handle_name_input_idempotency))
    assert "for execution in self.executions" in check and "execution.name == name" in check
    start = inspect.getsource(_unwrapped(StepFunctionsParserBackend.start_execution))
    assert "state_machine.executions.append(execution)" in start, "the index's catch-up assumes a list that only grows"


class _Machine:
    def __init__(self) -> None:
        self.executions: list = []


def test_the_index_catches_up_with_appends_and_starts_again_on_a_new_list():
    machine = _Machine()
    machine.executions += [SimpleNamespace(name="a"), SimpleNamespace(name="b")]
    assert set(executions_by_name(machine)) == {"a", "b"}
    machine.executions.append(SimpleNamespace(name="c"))
    assert executions_by_name(machine)["c"] is machine.executions[2]
    machine.executions = [SimpleNamespace(name="z")]
    assert set(executions_by_name(machine)) == {"z"}
