"""The seam's TestState additions of 2025: `stateName` (one state of a whole state machine) and `mock`
(the state's task answered by a given result or error, not called).

moto 5.2's interpreter already runs Step Functions Local's mocked mode (`MockTestCase`, read through
`Environment.mock_test_case` by Lambda and service tasks, by state name and retry count); TestState
names the state under test `TestStatePreprocessor.STATE_NAME`, so a mock becomes a one-state
`MockTestCase` in the TestState environment. What AWS documents for `mock` (API_MockInput):
`result` (a JSON string) or `errorOutput` (`error`, `cause`), and `fieldValidationMode`: STRICT (the
default: required fields present, present fields of the API's schema), PRESENT (present fields of
the schema) or NONE. Validation reads the integration's output shape from botocore's model, at the
top level; a task whose API botocore does not model (a function ARN as Resource, whose result is the
function's own payload) has nothing to validate against. Only Task states take a mock here: moto's
Map and Parallel states do not read one, so they are refused by name (ValidationException).
"""
from __future__ import annotations

import json
import re
from typing import Any

MOCK_STATE_TYPES = ("Task",)
SDK_METADATA = ("SdkHttpMetadata", "SdkResponseMetadata")  # what Step Functions adds to an integration's result
_INTEGRATION = re.compile(r"arn:aws[a-z-]*:states:::(?:aws-sdk:)?([a-z0-9-]+):([A-Za-z0-9]+)(?:\.[A-Za-z]+)?")
# Step Functions' service names that are not botocore's.
BOTOCORE_SERVICE = {"sfn": "stepfunctions", "states": "stepfunctions", "eventbridge": "events"}
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "long": (int,), "boolean": (bool,), "double": (int, float),
    "float": (int, float), "list": (list,), "structure": (dict,), "map": (dict,), "timestamp": (str, int, float),
}  # fmt: skip


def refuse(message: str) -> Exception:
    from moto.stepfunctions.parser.api import ValidationException

    return ValidationException(message)


def state_of(definition: str, state_name: str) -> str:
    """The definition of `state_name` in a whole state machine's `States` (top level), inheriting its QueryLanguage."""
    try:
        machine = json.loads(definition)
    except ValueError:
        return definition  # TestState's analyser answers InvalidDefinition
    states = machine.get("States") if isinstance(machine, dict) else None
    if not isinstance(states, dict) or not isinstance(states.get(state_name), dict):
        raise refuse(f"stateName '{state_name}' is not a state of the definition's top-level States")
    state = dict(states[state_name])
    if "QueryLanguage" in machine:
        state.setdefault("QueryLanguage", machine["QueryLanguage"])
    return json.dumps(state)


def mock_test_case(definition: str, mock: dict[str, Any]) -> Any:
    """A MockTestCase answering the state under test with the mock's result or error (validated first)."""
    from moto.stepfunctions.parser.asl.parse.test_state.preprocessor import TestStatePreprocessor
    from moto.stepfunctions.parser.mocking.mock_config import (
        MockedResponseReturn,
        MockedResponseThrow,
        MockTestCase,
        StateMockedResponses,
    )

    state = json.loads(definition)
    kind = state.get("Type") if isinstance(state, dict) else None
    if kind not in MOCK_STATE_TYPES:
        raise refuse(f"mock on the embedded stack is for Task states (moto's interpreter mocks tasks only); this is a {kind} state")
    result, error_output = mock.get("result"), mock.get("errorOutput")
    if (result is None) == (error_output is None):
        raise refuse("mock must have exactly one of result and errorOutput")
    mode = mock.get("fieldValidationMode") or "STRICT"
    if mode not in ("STRICT", "PRESENT", "NONE"):
        raise refuse(f"mock.fieldValidationMode must be STRICT, PRESENT or NONE, not {mode}")
    if error_output is not None:
        response: Any = MockedResponseThrow(0, 0, error=error_output.get("error") or "", cause=error_output.get("cause") or "")
    else:
        try:
            payload = json.loads(str(result))
        except ValueError as error:
            raise refuse(f"mock.result is not JSON: {error}") from error
        if mode != "NONE":
            validate_result(state.get("Resource", ""), payload, strict=mode == "STRICT")
        response = MockedResponseReturn(0, 0, payload)
    name = TestStatePreprocessor.STATE_NAME
    return MockTestCase("TestState", "mock", [StateMockedResponses(name, "mock", [response])])


def validate_result(resource: str, payload: Any, *, strict: bool) -> None:
    """The mocked result against the integration's output shape: known fields of the right JSON type,
    and (strict) every required field."""
    shape = _output_shape(resource)
    if shape is None:
        return
    if not isinstance(payload, dict):
        raise refuse(f"mock.result must be a JSON object for {resource}")
    members = shape.members
    for key, value in payload.items():
        if key in SDK_METADATA:
            continue
        if key not in members:
            raise refuse(f"mock.result field '{key}' is not in the {shape.name} of {resource}")
        expected = _JSON_TYPES.get(members[key].type_name)
        wrong_bool = isinstance(value, bool) and bool not in (expected or ())
        if expected is not None and (not isinstance(value, expected) or wrong_bool) and value is not None:
            raise refuse(f"mock.result field '{key}' must be a {members[key].type_name} for {resource}")
    missing = [name for name in shape.required_members if name not in payload] if strict else []
    if missing:
        raise refuse(f"mock.result lacks required field(s) {', '.join(missing)} of {resource} (fieldValidationMode STRICT)")


def _output_shape(resource: str) -> Any:
    """botocore's output shape of an integration's API (None for a Resource that names no API action)."""
    import botocore.session
    from botocore.exceptions import UnknownServiceError

    match = _INTEGRATION.fullmatch(resource)
    if match is None:
        return None
    service, action = BOTOCORE_SERVICE.get(match.group(1), match.group(1)), match.group(2)
    try:
        model = botocore.session.get_session().get_service_model(service)
    except UnknownServiceError as error:
        raise refuse(f"no API model for service '{service}' to validate mock.result against: "
                      "use fieldValidationMode NONE") from error  # fmt: skip
    operation = action[:1].upper() + action[1:]
    if operation not in model.operation_names:
        raise refuse(f"{service} has no action {operation} to validate mock.result against")
    return model.operation_model(operation).output_shape
