"""The ASL definition: placeholders, render, and the shape that guarantees one outcome per run."""
from __future__ import annotations

import json

import pytest

from scones.statemachine import UnresolvedPlaceholder, load_definition, placeholders, render

ARNS = {
    "SerializeImageFunctionArn": "arn:aws:lambda:us-east-1:1:function:s-serialize-image",
    "ClassifyImageFunctionArn": "arn:aws:lambda:us-east-1:1:function:s-classify-image",
    "FilterInferencesFunctionArn": "arn:aws:lambda:us-east-1:1:function:s-filter-inferences",
    "RecordOutcomeFunctionArn": "arn:aws:lambda:us-east-1:1:function:s-record-outcome",
}
SUBSTITUTIONS = {**ARNS, "RecordsBucket": "s-images", "FailedPrefix": "failed/"}
TRANSIENT = {"ModelNotReadyException", "ThrottlingException", "ServiceUnavailable", "EndpointConnectionError"}


@pytest.fixture
def states() -> dict:
    return json.loads(render(load_definition(), SUBSTITUTIONS))["States"]


def test_template_is_valid_json_with_one_placeholder_per_function_and_the_records_location():
    json.loads(load_definition())
    assert placeholders(load_definition()) == set(SUBSTITUTIONS)


def test_render_fills_every_placeholder(states):
    assert states["ClassifyImage"]["Parameters"]["FunctionName"] == ARNS["ClassifyImageFunctionArn"]
    assert "${" not in json.dumps(states)


def test_render_refuses_a_missing_substitution():
    partial = {k: v for k, v in SUBSTITUTIONS.items() if k != "FilterInferencesFunctionArn"}
    with pytest.raises(UnresolvedPlaceholder, match="FilterInferencesFunctionArn"):
        render(load_definition(), partial)


def test_render_refuses_a_placeholder_brought_in_by_a_value():
    with pytest.raises(UnresolvedPlaceholder, match=r"\$\{"):
        render('{"a": "${A}"}', {"A": "${B}"})


def test_render_escapes_values_as_json_strings():
    assert json.loads(render('{"a": "${A}"}', {"A": 'say "hi"'})) == {"a": 'say "hi"'}


def test_every_task_catches_everything_and_low_confidence_goes_to_review(states):
    tasks = {name: s for name, s in states.items() if s["Type"] == "Task" and name != "RecordFailureDirectly"}
    for name, state in tasks.items():
        assert state["Resource"] == "arn:aws:states:::lambda:invoke", name
        assert state["Catch"][-1]["ErrorEquals"] == ["States.ALL"], name
        assert any("Lambda.ServiceException" in r["ErrorEquals"] for r in state["Retry"]), name
    assert states["FilterInferences"]["Catch"][0] == {
        "ErrorEquals": ["ThresholdConfidenceNotMet"], "ResultPath": "$.failure", "Next": "RecordReview"}


def test_transient_endpoint_errors_are_retried_with_backoff(states):
    retry = next(r for r in states["ClassifyImage"]["Retry"] if TRANSIENT <= set(r["ErrorEquals"]))
    assert retry["BackoffRate"] > 1 and retry["MaxAttempts"] >= 2


def test_every_path_ends_in_classified_review_or_failed(states):
    ends = {name for name, s in states.items() if s.get("End") or s["Type"] in ("Succeed", "Fail")}
    assert ends == {"Classified", "RecordReview", "Failed"}
    assert states["Failed"] == {"Type": "Fail", "ErrorPath": "$.error", "CausePath": "$.cause"}
    for name, state in states.items():
        targets = [state.get("Next")] + [c["Next"] for c in state.get("Catch", [])]
        assert all(t in states for t in targets if t), name


def test_record_tasks_retry_their_function_dying(states):
    for name in ("RecordReview", "RecordFailure"):
        died = {error for retrier in states[name]["Retry"] for error in retrier["ErrorEquals"]}
        assert {"Sandbox.Timedout", "Runtime.ExitError", "Lambda.Unknown", "Lambda.TooManyRequestsException"} <= died, name


def test_a_failure_the_function_cannot_record_is_recorded_by_the_state_machine(states):
    assert states["RecordFailure"]["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.recording_failure", "Next": "DescribeUnrecordedFailure"}]
    described = states["DescribeUnrecordedFailure"]["Parameters"]
    assert {"error.$": "$.failure.Error", "cause.$": "$.failure.Cause"}.items() <= described.items()
    assert {"error.$": "$.failure.Error", "cause.$": "$.failure.Cause"}.items() <= described["record"].items()
    direct = states["RecordFailureDirectly"]
    assert direct["Resource"] == "arn:aws:states:::aws-sdk:s3:putObject" and direct["ResultPath"] is None
    assert direct["Parameters"] == {"Bucket": "s-images", "ContentType": "application/json",
                                    "Key.$": "States.Format('failed/{}.json', $$.Execution.Name)",
                                    "Body.$": "States.JsonToString($.record)"}  # fmt: skip
    # Recorded or not, the execution fails with the error that was caught.
    assert direct["Next"] == direct["Catch"][-1]["Next"] == "Failed"
