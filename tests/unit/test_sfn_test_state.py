"""TestState through the seam (moto_seam/test_state.py), driven by boto3 against moto in-process."""
from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from scones.local.emulator import moto_seam

ROLE = "arn:aws:iam::123456789012:role/test-state"


@pytest.fixture()
def sfn():
    moto_seam.install_step_functions()
    with mock_aws():
        # botocore puts "sync-" before the host (as for StartSyncExecution): moto routes the plain one
        yield boto3.client("stepfunctions", region_name="us-east-1", config=Config(inject_host_prefix=False))


def test_moto_builds_test_state_only_in_its_localstack_provider():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("moto.stepfunctions.parser.provider")  # importing it needs LocalStack
    assert spec is not None and spec.origin is not None, "moto moved its Step Functions provider"
    source = Path(spec.origin).read_text()
    assert "from localstack" in source, "moto's provider no longer imports LocalStack: TestState may be moto's own now"
    body = source[source.index("def test_state("):]
    for part in ("TestStateStaticAnalyser()", "TestStateMachine(", "TestStateExecution(", "to_test_state_output("):
        assert part in body, f"moto's test_state no longer uses {part}: re-read it before trusting add_test_state"


def test_a_pass_state_answers_its_output(sfn):
    definition = {"Type": "Pass", "Parameters": {"label.$": "$.label", "checked": True}, "End": True}
    answer = sfn.test_state(definition=json.dumps(definition), roleArn=ROLE, input=json.dumps({"label": "bicycle"}))
    assert answer["status"] == "SUCCEEDED" and json.loads(answer["output"]) == {"label": "bicycle", "checked": True}


def test_a_choice_state_names_the_next_state(sfn):
    definition = {"Type": "Choice", "Choices": [{"Variable": "$.confidence", "NumericGreaterThanEquals": 0.93,
                                                 "Next": "Classified"}], "Default": "Review"}  # fmt: skip
    answer = sfn.test_state(definition=json.dumps(definition), roleArn=ROLE, input=json.dumps({"confidence": 0.5}))
    assert answer["status"] == "SUCCEEDED" and answer["nextState"] == "Review"


def test_a_fail_state_answers_its_error(sfn):
    answer = sfn.test_state(definition=json.dumps({"Type": "Fail", "Error": "Nope", "Cause": "why"}), roleArn=ROLE, input="{}")
    assert (answer["status"], answer["error"], answer["cause"]) == ("FAILED", "Nope", "why")


def test_what_moto_cannot_do_is_refused_by_name(sfn):
    definition = json.dumps({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                             "Parameters": {"FunctionName": "f"}, "End": True})  # fmt: skip
    with pytest.raises(ClientError) as raised:
        sfn.test_state(definition=definition, roleArn=ROLE, input="{}", variables='{"x": 1}')
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "variables" in raised.value.response["Error"]["Message"]


def test_bad_definitions_and_inputs_get_aws_errors(sfn):
    with pytest.raises(ClientError) as raised:
        sfn.test_state(definition=json.dumps({"Type": "Nope"}), roleArn=ROLE, input="{}")
    assert raised.value.response["Error"]["Code"] == "InvalidDefinition"
    with pytest.raises(ClientError) as raised:
        sfn.test_state(definition=json.dumps({"Type": "Pass", "End": True}), roleArn=ROLE, input="{not json")
    assert raised.value.response["Error"]["Code"] == "InvalidExecutionInput"
