"""JSONata as Step Functions evaluates it: jsonata-python plus the functions AWS adds."""
from __future__ import annotations

import json

import pytest

from scones.local.emulator import sfn_jsonata

STATES = {"input": {"n": 21, "key": "incoming/a.png", "none": None}, "context": {"Execution": {"Name": "x"}}}


def value(expression: str, variables: dict | None = None):
    defined, result = sfn_jsonata.evaluate(expression, STATES, variables or {})
    assert defined, f"{expression} was undefined"
    return result


def test_states_and_variables_are_bound():
    assert value("$states.input.n * 2") == 42
    assert value("$states.context.Execution.Name") == "x"
    assert value("$doubled + 1", {"doubled": 42}) == 43
    assert value("$states.input.none") is None


def test_undefined_is_not_null():
    assert sfn_jsonata.evaluate("$states.input.missing", STATES, {}) == (False, None)
    assert sfn_jsonata.evaluate("null", STATES, {}) == (True, None)


def test_step_functions_functions():
    assert value("$partition([1,2,3,4,5], 2)") == [[1, 2], [3, 4], [5]]
    assert value("$range(0, 10, 5)") == [0, 5, 10]
    assert value("$range(3, 1, -1)") == [3, 2, 1]
    assert value("$hash('abc', 'SHA-256')") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert value("$random(7)") == value("$random(7)") and 0 <= value("$random()") < 1
    assert len(value("$uuid()")) == 36 and value("$uuid()") != value("$uuid()")
    assert value("$parse('{\"a\": [1, null]}')") == {"a": [1, None]}


def test_results_are_plain_json():
    result = value("{'list': [1, 2], 'nested': {'x': $states.input}}")
    assert json.loads(json.dumps(result)) == result and type(result["list"]) is list


def test_runtime_errors_are_named():
    with pytest.raises(sfn_jsonata.JSONataEvaluationError):
        value("'hello' / 42")
    with pytest.raises(sfn_jsonata.JSONataEvaluationError, match="algorithm"):
        value("$hash('a', 'CRC32')")


def test_definition_check_names_the_field_of_a_bad_expression():
    definition = {"QueryLanguage": "JSONata", "StartAt": "A",
                  "States": {"A": {"Type": "Pass", "Output": {"v": "{% 1 + %}"}, "End": True}}}
    with pytest.raises(sfn_jsonata.JSONataSyntaxError, match=r"INVALID_JSONATA_EXPRESSION: .* at /States/A/Output/v"):
        sfn_jsonata.check_definition(json.dumps(definition))


def test_definition_check_ignores_jsonpath_states():
    definition = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": "{% 1 + %}", "End": True}}}
    sfn_jsonata.check_definition(json.dumps(definition))
    mixed = {"QueryLanguage": "JSONata", "StartAt": "A",
             "States": {"A": {"Type": "Pass", "QueryLanguage": "JSONPath", "Result": "{% ( %}", "End": True}}}
    sfn_jsonata.check_definition(json.dumps(mixed))
