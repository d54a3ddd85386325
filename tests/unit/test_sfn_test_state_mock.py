"""TestState's stateName and mock (moto_seam/test_state_mock.py), through boto3 against a real moto server over HTTP."""
from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from scones.local.emulator import moto_seam

ROLE = "arn:aws:iam::123456789012:role/test-state"
INVOKE = {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"FunctionName": "absent"},
          "ResultSelector": {"label.$": "$.Payload.label"}, "ResultPath": "$.classified", "End": True}  # fmt: skip
MACHINE = {"QueryLanguage": "JSONata", "StartAt": "Route", "States": {
    "Route": {"Type": "Choice", "Choices": [{"Condition": "{% $states.input.n > 20 %}", "Next": "Classify"}],
              "Default": "Review"},
    "Review": {"Type": "Pass", "Output": {"doubled": "{% $states.input.n * 2 %}"}, "Next": "Classify"},
    "Classify": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Arguments": {"FunctionName": "absent"},
                 "Output": "{% $states.result.Payload %}", "End": True}}}  # fmt: skip


@pytest.fixture(scope="module")
def sfn() -> Iterator[object]:
    moto_seam.install_step_functions()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield boto3.client("stepfunctions", region_name="us-east-1", endpoint_url=f"http://{host}:{port}",
                           aws_access_key_id="testing", aws_secret_access_key="testing",
                           config=Config(inject_host_prefix=False))  # fmt: skip
    finally:
        server.stop()


def _error(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"], raised.value.response["Error"]["Message"]


def test_a_mocked_result_goes_through_the_states_result_selector_and_path(sfn):
    answer = sfn.test_state(definition=json.dumps(INVOKE), roleArn=ROLE, input=json.dumps({"s3_key": "k"}),
                            mock={"result": json.dumps({"Payload": {"label": "bicycle"}, "StatusCode": 200})})
    assert answer["status"] == "SUCCEEDED", answer
    assert json.loads(answer["output"]) == {"s3_key": "k", "classified": {"label": "bicycle"}}


def test_a_mocked_error_fails_the_state_with_it(sfn):
    mock = {"errorOutput": {"error": "ThresholdConfidenceNotMet", "cause": "0.51 < 0.93"}}
    answer = sfn.test_state(definition=json.dumps(INVOKE), roleArn=ROLE, input="{}", mock=mock)
    assert (answer["status"], answer["error"], answer["cause"]) == ("FAILED", "ThresholdConfidenceNotMet", "0.51 < 0.93")


def test_state_name_tests_one_state_of_a_whole_jsonata_machine(sfn):
    answer = sfn.test_state(definition=json.dumps(MACHINE), stateName="Route", roleArn=ROLE, input='{"n": 21}')
    assert (answer["status"], answer["nextState"]) == ("SUCCEEDED", "Classify"), answer
    answer = sfn.test_state(definition=json.dumps(MACHINE), stateName="Classify", roleArn=ROLE, input="{}",
                            mock={"result": json.dumps({"Payload": {"label": "motorcycle"}})})
    assert (answer["status"], json.loads(answer["output"])) == ("SUCCEEDED", {"label": "motorcycle"}), answer
    assert _error(lambda: sfn.test_state(definition=json.dumps(MACHINE), stateName="Nope", roleArn=ROLE))[0] == "ValidationException"


def test_field_validation_follows_the_api_model(sfn):
    def mocked(result: dict, mode: str | None = None):
        mock = {"result": json.dumps(result), **({"fieldValidationMode": mode} if mode else {})}
        return lambda: sfn.test_state(definition=json.dumps(INVOKE), roleArn=ROLE, input="{}", mock=mock)

    code, message = _error(mocked({"Payload": {}, "StatusCod": 200}))
    assert code == "ValidationException" and "StatusCod" in message
    assert "StatusCode" in _error(mocked({"StatusCode": "200"}, "PRESENT"))[1]
    assert mocked({"Payload": {"label": "x"}, "StatusCod": "200"}, "NONE")()["status"] == "SUCCEEDED"
    sdk = {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:s3:getObject", "End": True,
           "Parameters": {"Bucket": "b", "Key": "k"}}  # fmt: skip
    answer = sfn.test_state(definition=json.dumps(sdk), roleArn=ROLE, input="{}",
                            mock={"result": json.dumps({"ContentLength": 3, "ContentType": "image/png"})})
    assert json.loads(answer["output"]) == {"ContentLength": 3, "ContentType": "image/png"}


def test_a_mock_is_refused_where_moto_would_not_use_it(sfn):
    code, message = _error(lambda: sfn.test_state(definition=json.dumps({"Type": "Pass", "End": True}), roleArn=ROLE,
                                                  input="{}", mock={"result": "{}"}))  # fmt: skip
    assert code == "ValidationException" and "Task" in message
    code, message = _error(lambda: sfn.test_state(definition=json.dumps(INVOKE), roleArn=ROLE, input="{}",
                                                  mock={"result": "{}", "errorOutput": {"error": "E"}}))  # fmt: skip
    assert code == "ValidationException" and "exactly one" in message


def test_the_parts_the_mock_relies_on_are_where_the_seam_reads_them():
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.parse.test_state.preprocessor import TestStatePreprocessor
    from moto.stepfunctions.parser.backend.test_state.execution import TestStateExecution
    from moto.stepfunctions.parser.backend.test_state.execution_worker import TestStateExecutionWorker

    assert TestStatePreprocessor.STATE_NAME == "TestState", "moto renamed the state under test: mocks would not match it"
    assert "_get_evaluation_environment" in TestStateExecutionWorker.__dict__, "moto moved TestState's environment"
    assert "_get_start_execution_worker" in TestStateExecution.__dict__, "moto moved TestState's worker creation"
    assert {"is_mocked_mode", "get_current_mocked_response"} <= set(vars(Environment)), "moto dropped its mocked mode"
