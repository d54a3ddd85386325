"""TestState of a state that goes on, catches or would retry (moto_seam/test_state_execution.py), through
boto3 against a real moto server over HTTP: AWS answers SUCCEEDED + nextState, CAUGHT_ERROR, RETRIABLE."""
from __future__ import annotations

import json
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from scones.local.emulator import moto_seam

ROLE = "arn:aws:iam::123456789012:role/test-state"
WORKFLOW = (Path(__file__).parents[2] / "statemachine" / "workflow.asl.json").read_text()
LOW_CONFIDENCE = {"errorOutput": {"error": "ThresholdConfidenceNotMet", "cause": "0.51 < 0.93"}}
JSONATA_TASK = {"QueryLanguage": "JSONata", "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                "Arguments": {"FunctionName": "absent"}, "Output": "{% $states.result.Payload %}",
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Fallback",
                           "Output": {"photo": "{% $states.input.s3_key %}", "why": "{% $states.errorOutput.Error %}"}}],
                "Next": "Done"}  # fmt: skip


@pytest.fixture(scope="module")
def sfn(moto_server: str):
    moto_seam.install_step_functions()
    return boto3.client("stepfunctions", region_name="us-east-1", endpoint_url=moto_server,
                        config=Config(inject_host_prefix=False))  # fmt: skip


def _task(retry: list[dict], catch: list[dict] | None = None) -> str:
    state = {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"FunctionName": "absent"},
             "Retry": retry, "Next": "Done", **({"Catch": catch} if catch else {})}  # fmt: skip
    return json.dumps(state)


def test_a_state_that_goes_on_answers_its_next_state_and_output(sfn):
    jsonpath = {"Type": "Pass", "Result": {"checked": True}, "ResultPath": "$.review", "Next": "Classify"}
    answer = sfn.test_state(definition=json.dumps(jsonpath), roleArn=ROLE, input='{"n": 1}')
    assert (answer["status"], answer["nextState"]) == ("SUCCEEDED", "Classify"), answer
    assert json.loads(answer["output"]) == {"n": 1, "review": {"checked": True}}
    machine = {"QueryLanguage": "JSONata", "StartAt": "Review", "States": {
        "Review": {"Type": "Pass", "Output": {"doubled": "{% $states.input.n * 2 %}"}, "Next": "Classify"},
        "Classify": {"Type": "Succeed"}}}  # fmt: skip
    answer = sfn.test_state(definition=json.dumps(machine), stateName="Review", roleArn=ROLE, input='{"n": 4}')
    assert (answer["status"], answer["nextState"], json.loads(answer["output"])) == ("SUCCEEDED", "Classify", {"doubled": 8})
    answer = sfn.test_state(definition=WORKFLOW, stateName="ClassifyImage", roleArn=ROLE, input="{}",
                            mock={"result": json.dumps({"Payload": {"label": "bicycle"}, "StatusCode": 200})})
    assert (answer["status"], answer["nextState"], json.loads(answer["output"])) == ("SUCCEEDED", "FilterInferences",
                                                                                     {"label": "bicycle"})  # fmt: skip
    assert "error" not in answer and "inspectionData" not in answer


def test_the_workflows_catch_of_a_mocked_error_answers_caught_error(sfn):
    answer = sfn.test_state(definition=WORKFLOW, stateName="ClassifyImage", roleArn=ROLE, input='{"s3_key": "k"}',
                            mock=LOW_CONFIDENCE, inspectionLevel="DEBUG")  # fmt: skip
    assert (answer["status"], answer["nextState"]) == ("CAUGHT_ERROR", "RecordFailure"), answer
    assert (answer["error"], answer["cause"]) == ("ThresholdConfidenceNotMet", "0.51 < 0.93")
    failure = {"Error": "ThresholdConfidenceNotMet", "Cause": "0.51 < 0.93"}
    assert json.loads(answer["output"]) == {"s3_key": "k", "failure": failure}
    assert answer["inspectionData"]["errorDetails"] == {"catchIndex": 0}


def test_the_first_catcher_that_matches_is_the_one_named(sfn):
    def caught(error: str) -> tuple[str, int]:
        answer = sfn.test_state(definition=WORKFLOW, stateName="FilterInferences", roleArn=ROLE, input="{}",
                                mock={"errorOutput": {"error": error, "cause": ""}}, inspectionLevel="TRACE")  # fmt: skip
        assert answer["status"] == "CAUGHT_ERROR", answer
        return answer["nextState"], answer["inspectionData"]["errorDetails"]["catchIndex"]

    assert caught("ThresholdConfidenceNotMet") == ("RecordReview", 0)
    assert caught("KeyError") == ("RecordFailure", 1)


def test_a_jsonata_catcher_output_is_the_answer_with_or_without_a_mock(sfn):
    mocked = sfn.test_state(definition=json.dumps(JSONATA_TASK), roleArn=ROLE, input='{"s3_key": "k"}',
                            mock={"errorOutput": {"error": "Boom", "cause": "c"}})  # fmt: skip
    assert (mocked["status"], mocked["nextState"], mocked["error"]) == ("CAUGHT_ERROR", "Fallback", "Boom"), mocked
    assert json.loads(mocked["output"]) == {"photo": "k", "why": "Boom"}
    failing = {**JSONATA_TASK, "Arguments": {"FunctionName": "{% $error('no function name') %}"}}  # fails unmocked
    called = sfn.test_state(definition=json.dumps(failing), roleArn=ROLE, input='{"s3_key": "k"}')
    assert (called["status"], called["nextState"], called["error"]) == ("CAUGHT_ERROR", "Fallback",
                                                                         "States.QueryEvaluationError"), called  # fmt: skip
    assert "no function name" in called["cause"]
    assert json.loads(called["output"]) == {"photo": "k", "why": "States.QueryEvaluationError"}


def test_a_matching_retry_answers_retriable_with_its_backoff_not_waited(sfn):
    answer = sfn.test_state(definition=WORKFLOW, stateName="ClassifyImage", roleArn=ROLE, input="{}",
                            mock={"errorOutput": {"error": "ModelNotReadyException", "cause": "warming"}},
                            inspectionLevel="DEBUG")  # fmt: skip
    assert (answer["status"], answer["error"], answer["cause"]) == ("RETRIABLE", "ModelNotReadyException", "warming")
    assert "nextState" not in answer and "output" not in answer
    assert answer["inspectionData"]["errorDetails"] == {"retryIndex": 1, "retryBackoffIntervalSeconds": 1}
    hour = [{"ErrorEquals": ["Other"]}, {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 3600, "MaxDelaySeconds": 1800}]
    started = time.monotonic()
    answer = sfn.test_state(definition=_task(hour), roleArn=ROLE, input="{}", inspectionLevel="DEBUG",
                            mock={"errorOutput": {"error": "Boom", "cause": ""}})  # fmt: skip
    assert time.monotonic() - started < 60, "TestState waited for the retry's backoff"
    assert answer["status"] == "RETRIABLE"
    assert answer["inspectionData"]["errorDetails"] == {"retryIndex": 1, "retryBackoffIntervalSeconds": 1800}


def test_retrier_retry_count_is_the_attempts_already_made_as_in_aws_guide(sfn):
    # AWS's guide (test-state-isolation, "Simulating retry attempts"): RETRIABLE, backoff 4 s = 2 x 2.0^1, retryIndex 0
    retry = [{"ErrorEquals": ["Lambda.ServiceException"], "IntervalSeconds": 2, "MaxAttempts": 3, "BackoffRate": 2.0}]
    mock = {"errorOutput": {"error": "Lambda.ServiceException", "cause": "Service error"}}
    answer = sfn.test_state(definition=_task(retry), roleArn=ROLE, input='{"data": "value"}', mock=mock,
                            stateConfiguration={"retrierRetryCount": 1}, inspectionLevel="DEBUG")  # fmt: skip
    assert answer["status"] == "RETRIABLE", answer
    assert answer["inspectionData"]["errorDetails"] == {"retryBackoffIntervalSeconds": 4, "retryIndex": 0}
    exhausted = sfn.test_state(definition=WORKFLOW, stateName="ClassifyImage", roleArn=ROLE, input="{}",
                               mock={"errorOutput": {"error": "ModelNotReadyException", "cause": "warming"}},
                               stateConfiguration={"retrierRetryCount": 3}, inspectionLevel="DEBUG")  # fmt: skip
    assert (exhausted["status"], exhausted["nextState"]) == ("CAUGHT_ERROR", "RecordFailure"), exhausted
    assert exhausted["inspectionData"]["errorDetails"] == {"catchIndex": 0}


def test_state_configuration_that_cannot_apply_is_refused_by_name(sfn, moto_server):
    unchecked = boto3.client("stepfunctions", region_name="us-east-1", endpoint_url=moto_server,
                             config=Config(inject_host_prefix=False, parameter_validation=False))  # fmt: skip
    for client, configuration, named in ((sfn, {"retrierRetryCount": 0, "mapIterationFailureCount": 1},
                                          "stateConfiguration.mapIterationFailureCount"),
                                         (unchecked, {"retrierRetryCount": -1}, "retrierRetryCount")):  # fmt: skip
        with pytest.raises(ClientError) as raised:
            client.test_state(definition=_task([]), roleArn=ROLE, input="{}", mock={"result": "{}"},
                              stateConfiguration=configuration)  # fmt: skip
        error = raised.value.response["Error"]
        assert error["Code"] == "ValidationException" and named in error["Message"], error


def test_a_retry_without_attempts_left_goes_on_to_the_catch_or_fails(sfn):
    no_attempts = [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 0}]
    mock = {"errorOutput": {"error": "Boom", "cause": "c"}}
    caught = sfn.test_state(definition=_task(no_attempts, [{"ErrorEquals": ["States.ALL"], "Next": "Fallback"}]),
                            roleArn=ROLE, input="{}", mock=mock)  # fmt: skip
    assert (caught["status"], caught["nextState"]) == ("CAUGHT_ERROR", "Fallback"), caught
    failed = sfn.test_state(definition=_task(no_attempts), roleArn=ROLE, input="{}", mock=mock)
    assert (failed["status"], failed["error"], failed["cause"]) == ("FAILED", "Boom", "c"), failed
    assert "nextState" not in failed


def test_the_parts_the_execution_relies_on_are_where_the_seam_reads_them():
    import inspect

    from moto.stepfunctions.parser.asl.component.common.catch.catch_decl import CatchDecl
    from moto.stepfunctions.parser.asl.component.common.catch.catcher_decl import CatcherDecl
    from moto.stepfunctions.parser.asl.component.common.retry.backoff_rate_decl import BackoffRateDecl
    from moto.stepfunctions.parser.asl.component.common.retry.max_attempts_decl import MaxAttemptsDecl
    from moto.stepfunctions.parser.asl.component.common.retry.retrier_decl import RetrierDecl
    from moto.stepfunctions.parser.asl.component.common.retry.retry_decl import RetryDecl
    from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState
    from moto.stepfunctions.parser.asl.component.test_state.program.test_state_program import TestStateProgram
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.eval.states import States
    from moto.stepfunctions.parser.backend.test_state.execution import TestStateExecution

    assert {"_get_start_execution_worker", "_get_start_execution_worker_comm"} <= set(vars(TestStateExecution))
    assert "terminated" in vars(TestStateExecution.TestCaseExecutionWorkerCommunication)
    assert "test_state" in inspect.signature(TestStateProgram.__init__).parameters, "moto renamed the tested state"
    assert "catchers" in inspect.signature(CatchDecl.__init__).parameters
    assert "retriers" in inspect.signature(RetryDecl.__init__).parameters
    assert "CatcherOutcomeCaught()" in inspect.getsource(CatcherDecl._eval_body), "moto's catcher reports a catch otherwise"
    retrier, at = inspect.getsource(RetrierDecl._eval_body), 0
    for step in ("self.max_delay_seconds.eval(env=env)", "self.jitter_strategy.eval(env=env)", "env.stack.pop()", "time.sleep("):
        at = retrier.find(step, at)
        assert at >= 0, f"moto's retrier no longer has {step} in this order: re-read it before trusting RETRIABLE"
    assert "while env.is_running():" in inspect.getsource(ExecutionState._eval_state), "a stopped program would retry"
    assert {"get_error_output", "set_error_output"} <= set(vars(States))
    assert "set_stop" in vars(Environment)
    assert "_store_attempt_number" in vars(MaxAttemptsDecl) and "_store_next_multiplier" in vars(BackoffRateDecl)
    assert "self._access_attempt_number(env=env)" in inspect.getsource(MaxAttemptsDecl._eval_body)
    assert "self._access_next_multiplier(env=env)" in inspect.getsource(BackoffRateDecl._eval_body)
