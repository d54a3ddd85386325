"""statemachine/MockConfigFile.json agrees with statemachine/workflow.asl.json.

Step Functions Local and LocalStack (SFN_MOCK_CONFIG) run these test cases against the real
definition; when a state is renamed, added or rerouted, this test fails here first. A small
walker follows each test case through the definition the way Step Functions would (Retry,
Catch, Next) and checks that every Task it reaches has a mocked response.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from fixtures.compose_fixtures import MOCK_TEST_CASE_OUTCOMES
from scones.model.config import load_settings
from scones.statemachine import DEFINITION_PATH

MOCK_CONFIG_PATH = DEFINITION_PATH.with_name("MockConfigFile.json")
REQUIRED_SCENARIOS = {"HappyPath", "LowConfidenceToReview", "TransientEndpointErrorRetried", "MissingObjectFails"}
OUTCOME_KEYS = {
    "classified": {"label", "confidence", "inferences", "labels", "s3_bucket", "s3_key"},
    "review": {"label", "confidence", "inferences", "labels", "reason", "review_record"},
    "failed": {"error", "cause"},
}


class MockDrift(AssertionError):
    """The mock configuration no longer matches the definition."""


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _response(mocked: dict, attempt: int) -> dict:
    """The mocked response for the n-th call (keys are "0" or ranges like "1-3")."""
    for key, response in mocked.items():
        low, _, high = key.partition("-")
        if int(low) <= attempt <= int(high or low):
            return response
    raise MockDrift(f"no response for attempt {attempt} (keys {sorted(mocked)})")


def _matches(error_equals: list[str], error: str) -> bool:
    return error in error_equals or "States.ALL" in error_equals or "States.TaskFailed" in error_equals


def walk(definition: dict, case_name: str, case: dict, responses: dict) -> dict:
    """Follow one test case; returns {"status", "path", "output", "error", "retries"}."""
    states = definition["States"]
    name, output, path, retries = definition["StartAt"], None, [], 0
    for _ in range(100):
        state = states[name]
        path.append(name)
        kind = state["Type"]
        if kind == "Succeed":
            return {"status": "SUCCEEDED", "path": path, "output": output, "error": None, "retries": retries}
        if kind == "Fail":
            error = output.get(state["ErrorPath"].removeprefix("$.")) if "ErrorPath" in state else state.get("Error")
            return {"status": "FAILED", "path": path, "output": output, "error": error, "retries": retries}
        if kind == "Pass":
            name = state["Next"]
            continue
        if kind != "Task":
            raise MockDrift(f"{case_name}: the walker does not know state type {kind} ({name})")
        if name not in case:
            raise MockDrift(f"{case_name}: reaches Task {name!r} but mocks no response for it")
        mocked = responses.get(case[name])
        if mocked is None:
            raise MockDrift(f"{case_name}: {name} uses undefined mocked response {case[name]!r}")
        attempt, tries_by_retrier = 0, {}
        while True:
            response = _response(mocked, attempt)
            if "Return" in response:
                returned = response["Return"]
                output = returned["Payload"] if state.get("OutputPath") == "$.Payload" else returned
                next_name = None if state.get("End") else state["Next"]
                break
            error = response["Throw"]["Error"]
            retrier = next((i for i, r in enumerate(state.get("Retry", [])) if _matches(r["ErrorEquals"], error)), None)
            if retrier is not None and tries_by_retrier.get(retrier, 0) < state["Retry"][retrier].get("MaxAttempts", 3):
                tries_by_retrier[retrier] = tries_by_retrier.get(retrier, 0) + 1
                attempt += 1
                retries += 1
                continue
            catcher = next((c for c in state.get("Catch", []) if _matches(c["ErrorEquals"], error)), None)
            if catcher is None:
                return {"status": "FAILED", "path": path, "output": None, "error": error, "retries": retries}
            next_name = catcher["Next"]
            break
        if next_name is None:
            return {"status": "SUCCEEDED", "path": path, "output": output, "error": None, "retries": retries}
        name = next_name
    raise MockDrift(f"{case_name}: no end after 100 states: {path}")


def mock_config_problems(definition: dict, mock_config: dict, state_machine_name: str) -> list[str]:
    """Everything that makes the mock file disagree with the definition; empty when they agree."""
    problems = []
    machines = mock_config.get("StateMachines", {})
    if state_machine_name not in machines:
        problems.append(f"no test cases for state machine {state_machine_name!r} (has {sorted(machines)})")
        return problems
    cases = machines[state_machine_name]["TestCases"]
    responses = mock_config.get("MockedResponses", {})
    used = set()
    for case_name, case in cases.items():
        for state_name, response_name in case.items():
            used.add(response_name)
            state = definition["States"].get(state_name)
            if state is None:
                problems.append(f"{case_name}: state {state_name!r} does not exist in the definition")
            elif state["Type"] != "Task":
                problems.append(f"{case_name}: state {state_name!r} is a {state['Type']}, not a Task")
        try:
            result = walk(definition, case_name, case, responses)
        except (MockDrift, KeyError) as error:
            problems.append(str(error))
            continue
        unreached = set(case) - set(result["path"])
        if unreached:
            problems.append(f"{case_name}: mocks states its path never reaches: {sorted(unreached)} (path {result['path']})")
    problems += [f"mocked response {name!r} is used by no test case" for name in sorted(set(responses) - used)]
    return problems


@pytest.fixture(scope="module")
def definition() -> dict:
    return _load(DEFINITION_PATH)


@pytest.fixture(scope="module")
def mock_config() -> dict:
    return _load(MOCK_CONFIG_PATH)


@pytest.fixture(scope="module")
def state_machine_name() -> str:
    # The name deploy_stack gives the default stack's state machine (contract C).
    return f"{load_settings(env={}).stack_name}-workflow"


def test_mock_config_agrees_with_definition(definition, mock_config, state_machine_name):
    assert mock_config_problems(definition, mock_config, state_machine_name) == []


def test_mock_config_has_the_required_scenarios(mock_config, state_machine_name):
    cases = set(mock_config["StateMachines"][state_machine_name]["TestCases"])
    assert REQUIRED_SCENARIOS <= cases
    assert cases == set(MOCK_TEST_CASE_OUTCOMES), "every test case needs an expected outcome, and only those"


@pytest.mark.parametrize("case_name", sorted(MOCK_TEST_CASE_OUTCOMES))
def test_mock_test_case_ends_as_expected(definition, mock_config, state_machine_name, case_name):
    case = mock_config["StateMachines"][state_machine_name]["TestCases"][case_name]
    result = walk(definition, case_name, case, mock_config["MockedResponses"])
    expected = MOCK_TEST_CASE_OUTCOMES[case_name]
    assert result["status"] == expected["status"], result
    if expected["status"] == "FAILED":
        assert result["error"] == expected["error"]
    outcome = expected["outcome"]
    assert result["output"]["outcome"] == outcome
    assert OUTCOME_KEYS[outcome] <= set(result["output"]), f"{case_name}: final output breaks contract (C)"
    assert result["retries"] == expected.get("retries", 0)


def test_transient_error_is_one_the_definition_retries(definition, mock_config):
    first = mock_config["MockedResponses"]["ClassifyModelNotReadyThenConfident"]["0"]["Throw"]["Error"]
    retried = {e for r in definition["States"]["ClassifyImage"]["Retry"] for e in r["ErrorEquals"]}
    assert first in retried


def _renamed(definition: dict, old: str, new: str) -> dict:
    return json.loads(json.dumps(definition).replace(f'"{old}"', f'"{new}"'))


@pytest.mark.parametrize(
    "drift",
    ["rename a mocked Task", "add a Task on the happy path", "stop retrying the transient error", "rename the machine"],
)
def test_drift_is_detected(definition, mock_config, state_machine_name, drift):
    """The check can fail: each kind of drift it exists for is reported."""
    name = state_machine_name
    drifted = copy.deepcopy(definition)
    if drift == "rename a mocked Task":
        drifted = _renamed(definition, "ClassifyImage", "InvokeModel")
    elif drift == "add a Task on the happy path":
        drifted["States"]["AuditImage"] = {**drifted["States"]["FilterInferences"], "Next": "Classified"}
        drifted["States"]["FilterInferences"]["Next"] = "AuditImage"
    elif drift == "stop retrying the transient error":
        drifted["States"]["ClassifyImage"]["Retry"] = drifted["States"]["ClassifyImage"]["Retry"][:1]
    else:
        name = "another-workflow"
    assert mock_config_problems(drifted, mock_config, name), drift
