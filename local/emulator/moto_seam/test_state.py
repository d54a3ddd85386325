"""The seam's TestState section: moto 5.2's interpreter has TestState's parts, but only its
LocalStack-derived `parser/provider.py` (which imports LocalStack) wires them to the API, so moto's
server answered 500. `add_test_state` routes the action to the same parts, the way `provider.py`'s
`test_state` does: `TestStateStaticAnalyser`, `TestStateMachine`, `TestStateExecution` (run in the
request, as AWS answers with the state's result).

`stateName` and `mock` (added by AWS in 2025) are built from the interpreter's mocked mode
(`test_state_mock.py`). moto's TestStateExecution ends only at End, Fail, Succeed or a Choice; a state
that goes on to its Next (SUCCEEDED, nextState), whose Catch caught its error (CAUGHT_ERROR) or whose
Retry matched it (RETRIABLE; `stateConfiguration.retrierRetryCount` attempts already made) is
reported as AWS does by `test_state_execution.py`. What moto's parts cannot do is refused by name
(ValidationException), never run differently: `context` (added by AWS after the interpreter moto
copied), `stateConfiguration`'s Map fields (moto's TestState refuses Map and Parallel states) and
`variables` (which `provider.py` accepts and ignores).
"""
from __future__ import annotations

import datetime
import json
from typing import Any

from scones.local.emulator.moto_seam.test_state_execution import test_state_execution_class
from scones.local.emulator.moto_seam.test_state_mock import refuse, mock_test_case, state_of

UNSUPPORTED = ("context", "variables")
CONFIGURATION = ("retrierRetryCount",)  # the stateConfiguration moto's interpreter can honour (the others are Map's)


def add_test_state() -> None:
    """StepFunctionResponse gains `test_state` (the TestState action)."""
    from moto.core.responses import ActionResult
    from moto.stepfunctions.responses import StepFunctionResponse

    def test_state(self: Any) -> Any:
        configuration = self._get_param("stateConfiguration") or {}
        given = [name for name in UNSUPPORTED if self._get_param(name) is not None]
        given += [f"stateConfiguration.{name}" for name in configuration if name not in CONFIGURATION]
        if given:
            raise refuse(f"TestState on the embedded stack does not support {', '.join(given)} "
                          "(moto's interpreter has no such step)")  # fmt: skip
        retry_count = configuration.get("retrierRetryCount", 0)
        if not isinstance(retry_count, int) or isinstance(retry_count, bool) or retry_count < 0:
            raise refuse(f"stateConfiguration.retrierRetryCount must be an integer of at least 0, not {retry_count!r}")
        definition, state_name, mock = self._get_param("definition"), self._get_param("stateName"), self._get_param("mock")
        if state_name is not None:
            definition = state_of(definition, state_name)
        return ActionResult(run_test_state(
            self.stepfunction_backend, definition, self._get_param("roleArn"), self._get_param("input", if_none="{}"),
            self._get_param("inspectionLevel"), mock=mock, retry_count=retry_count,
        ))  # fmt: skip

    StepFunctionResponse.test_state = test_state  # type: ignore[attr-defined]


def run_test_state(backend: Any, definition: str, role_arn: str, execution_input: str, inspection_level: str | None,
                   mock: dict[str, Any] | None = None, retry_count: int = 0) -> Any:  # fmt: skip
    """What `provider.py`'s test_state does, without LocalStack's request context (and with a mock and
    `retry_count` attempts already made by the Retry that matches)."""
    import uuid

    from moto.stepfunctions.parser.api import InspectionLevel, InvalidDefinition, InvalidExecutionInput
    from moto.stepfunctions.parser.asl.static_analyser.test_state.test_state_analyser import TestStateStaticAnalyser
    from moto.stepfunctions.parser.backend.state_machine import TestStateMachine

    try:
        TestStateStaticAnalyser().analyse(definition)
    except Exception as error:
        raise InvalidDefinition(f"Invalid State Machine Definition: '{type(error).__name__}: {error}'") from error
    try:
        json.loads(execution_input)  # moto's Execution parses the text itself (provider.py hands it a dict, which fails)
    except ValueError as error:
        raise InvalidExecutionInput(str(error)) from error
    mocked = mock_test_case(definition, mock) if mock is not None else None
    name = f"TestState-{uuid.uuid4().hex[:8]}"
    prefix = f"arn:{backend.partition}:states:{backend.region_name}:{backend.account_id}"
    machine = TestStateMachine(name=name, arn=f"{prefix}:stateMachine:{name}", role_arn=role_arn, definition=definition)
    execution = test_state_execution_class()(
        name=name, role_arn=role_arn, exec_arn=f"{prefix}:execution:{name}:{name}", account_id=backend.account_id,
        region_name=backend.region_name, state_machine=machine, start_date=datetime.datetime.now(tz=datetime.timezone.utc),
        input_data=execution_input, activity_store=backend.activities, mocked=mocked, retry_count=retry_count,
    )  # fmt: skip
    execution.start()
    return execution.to_test_state_output(inspection_level=InspectionLevel(inspection_level or "INFO"))

