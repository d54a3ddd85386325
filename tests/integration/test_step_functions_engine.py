"""The embedded stack's Step Functions, through a real moto_host process over HTTP and real boto3:
JSONata machines (the seeds' export unchanged), AWS's errors for bad input, S3 → EventBridge runs."""
from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from scones.local.deploy.iam_policies import event_rule_policy, trust_policy
from scones.local.deploy.s3_trigger import ensure_s3_trigger
from scones.local.stacks.embedded import start_moto_host, stop_process_group

pytestmark = pytest.mark.integration

SEEDS = Path(__file__).resolve().parents[1] / "fixtures" / "seeds"
ROLE = "arn:aws:iam::123456789012:role/sfn"
SEED_FUNCTIONS = {"serializeImageData": "serialize_image_data", "classifyImage": "classify_image",
                  "filterInferences": "filter_inferences"}  # fmt: skip


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory, fake_aws_credentials) -> Iterator[boto3.Session]:
    """moto_host (the embedded stack's moto) with the seeds' three functions deployed."""
    process, url = start_moto_host(tmp_path_factory.mktemp("moto") / "moto.log", "us-east-1")
    try:
        session = _Session(url)
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.write(SEEDS / "lambdas.py", "lambda_function.py")
        session.client("iam").create_role(RoleName="sfn", AssumeRolePolicyDocument=json.dumps(trust_policy("lambda.amazonaws.com")))
        lam = session.client("lambda")
        for name, handler in SEED_FUNCTIONS.items():
            lam.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler=f"lambda_function.{handler}",
                                Code={"ZipFile": code.getvalue()}, Timeout=10)  # fmt: skip
        yield session
    finally:
        stop_process_group(process.pid)


class _Session(boto3.Session):
    def __init__(self, url: str):
        super().__init__(region_name="us-east-1")
        self.url = url

    def client(self, service_name: str, *args, **kwargs):  # type: ignore[override]
        return super().client(service_name, *args, endpoint_url=self.url, **kwargs)


def machine(session: boto3.Session, name: str, definition: dict | str) -> str:
    text = definition if isinstance(definition, str) else json.dumps(definition)
    return session.client("stepfunctions").create_state_machine(name=name, definition=text, roleArn=ROLE)["stateMachineArn"]


def run(session: boto3.Session, arn: str, execution_input: object) -> dict:
    sfn = session.client("stepfunctions")
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps(execution_input))["executionArn"]
    deadline = time.monotonic() + 30
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "execution still running"
        time.sleep(0.01)
    return described


@pytest.fixture(scope="module")
def seeds_machine(session: boto3.Session) -> str:
    return machine(session, "seeds-jsonata", (SEEDS / "jsonata_workflow.asl.json").read_text())


def test_seeds_jsonata_machine_classifies_a_confident_image(session, seeds_machine):
    result = run(session, seeds_machine, {"s3_bucket": "b", "s3_key": "test/bicycle.png"})
    assert result["status"] == "SUCCEEDED", (result.get("error"), result.get("cause"))
    body = json.loads(result["output"])["body"]
    assert (body["s3_key"], body["inferences"]) == ("test/bicycle.png", [0.97, 0.03])


def test_seeds_jsonata_machine_catches_by_error_name_into_the_fallback(session, seeds_machine):
    result = run(session, seeds_machine, {"s3_bucket": "b", "s3_key": "test/blurry.png"})
    assert result["status"] == "SUCCEEDED", (result.get("error"), result.get("cause"))
    output = json.loads(result["output"])
    assert (output["outcome"], output["error"]) == ("fallback", "ThresholdConfidenceNotMet")
    assert "THRESHOLD_CONFIDENCE_NOT_MET" in output["cause"]


def test_burst_of_executions_share_the_parsed_definition(session, seeds_machine):
    keys = [f"test/{'blurry' if i % 3 == 0 else 'sharp'}-{i}.png" for i in range(20)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda key: run(session, seeds_machine, {"s3_bucket": "b", "s3_key": key}), keys))
    outcomes = [json.loads(r["output"]).get("outcome", "classified") for r in results]
    assert outcomes == ["fallback" if "blurry" in key else "classified" for key in keys]


def test_jsonata_arguments_assign_variables_and_functions(session):
    definition = {"QueryLanguage": "JSONata", "StartAt": "Serialize", "States": {
        "Serialize": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                      "Arguments": {"FunctionName": "serializeImageData",
                                    "Payload": {"s3_bucket": "{% $states.input.bucket %}", "s3_key": "{% $states.input.keys[0] %}"}},
                      "Assign": {"key": "{% $states.result.Payload.body.s3_key %}", "chunks": "{% $partition($states.input.keys, 2) %}"},
                      "Output": "{% $states.result.Payload.body %}", "Next": "Summarise"},
        "Summarise": {"Type": "Pass", "Output": {
            "key": "{% $key %}", "chunks": "{% $chunks %}", "range": "{% $range(1, 5, 2) %}",
            "hash": "{% $hash($key, 'MD5') %}", "parsed": "{% $parse('[1, 2]') %}", "uuid": "{% $length($uuid()) %}",
            "random": "{% $random(1) = $random(1) %}", "execution": "{% $states.context.Execution.Name %}",
            "partition": "{% $split($states.context.StateMachine.Id, ':')[1] %}", "image": "{% $states.input.image_data %}"},
            "End": True}}}  # fmt: skip
    result = run(session, machine(session, "jsonata-features", definition), {"bucket": "b", "keys": ["a.png", "b.png", "c.png"]})
    assert result["status"] == "SUCCEEDED", (result.get("error"), result.get("cause"))
    output = json.loads(result["output"])
    assert (output["key"], output["chunks"], output["range"]) == ("a.png", [["a.png", "b.png"], ["c.png"]], [1, 3, 5])
    assert output["hash"] == hashlib.md5(b"a.png").hexdigest()
    assert (output["parsed"], output["uuid"], output["random"], output["partition"]) == ([1, 2], 36, True, "aws")
    assert output["execution"] and output["image"]


def test_invalid_jsonata_is_refused_at_create(session):
    definition = {"QueryLanguage": "JSONata", "StartAt": "A",
                  "States": {"A": {"Type": "Pass", "Output": "{% 'a' & %}", "End": True}}}
    with pytest.raises(ClientError) as raised:
        machine(session, "bad-jsonata", definition)
    error = raised.value.response["Error"]
    assert error["Code"] == "InvalidDefinition" and "INVALID_JSONATA_EXPRESSION" in error["Message"]
    assert "/States/A/Output" in error["Message"]


def test_jsonata_runtime_error_is_query_evaluation_error(session):
    definition = {"QueryLanguage": "JSONata", "StartAt": "A",
                  "States": {"A": {"Type": "Pass", "Output": "{% $states.input.name / 2 %}", "End": True}}}
    result = run(session, machine(session, "jsonata-runtime", definition), {"name": "text"})
    assert (result["status"], result["error"]) == ("FAILED", "States.QueryEvaluationError"), (result.get("error"), result.get("cause"))


def test_non_json_input_is_invalid_execution_input(session, seeds_machine):
    with pytest.raises(ClientError) as raised:
        session.client("stepfunctions").start_execution(stateMachineArn=seeds_machine, input="{not json")
    assert raised.value.response["Error"]["Code"] == "InvalidExecutionInput"


@pytest.mark.parametrize("execution_input", [[1, 2], 5, "text", None])
def test_non_object_input_fails_with_aws_error_not_python_text(session, execution_input):
    definition = {"StartAt": "Serialize", "States": {
        "Serialize": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                      "Parameters": {"FunctionName": "serializeImageData", "Payload.$": "$"},
                      "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "Done"}], "End": True},
        "Done": {"Type": "Succeed"}}}  # fmt: skip
    arn = machine(session, f"non-object-{type(execution_input).__name__}", definition)
    result = run(session, arn, execution_input)
    assert (result["status"], result["error"]) == ("FAILED", "States.ResultPathMatchFailure"), (result.get("error"), result.get("cause"))
    for python_text in ("TypeError", "KeyError", "Traceback", "list indices"):
        assert python_text not in result["cause"]


def test_unnamed_executions_get_distinct_names(session, seeds_machine):
    sfn = session.client("stepfunctions")
    first, second = (sfn.start_execution(stateMachineArn=seeds_machine, input="{}")["executionArn"] for _ in range(2))
    assert first != second and not first.endswith(":None")


def test_put_under_incoming_starts_an_execution_within_a_second(session):
    s3, iam, sfn = session.client("s3"), session.client("iam"), session.client("stepfunctions")
    s3.create_bucket(Bucket="drop")
    arn = machine(session, "on-drop", {"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "End": True}}})
    role = iam.create_role(RoleName="events-sfn", AssumeRolePolicyDocument=json.dumps(trust_policy("events.amazonaws.com")))
    iam.put_role_policy(RoleName="events-sfn", PolicyName="start", PolicyDocument=json.dumps(event_rule_policy(arn)))
    ensure_s3_trigger(s3, session.client("events"), stack_name="drop", bucket="drop", state_machine_arn=arn,
                      role_arn=role["Role"]["Arn"], tags={})  # fmt: skip
    assert "EventBridgeConfiguration" in s3.get_bucket_notification_configuration(Bucket="drop")
    s3.put_object(Bucket="drop", Key="other/ignored.png", Body=b"x")
    put_at = time.time()
    s3.put_object(Bucket="drop", Key="incoming/photo 1.png", Body=b"x")
    deadline = time.monotonic() + 1.0
    while not (executions := sfn.list_executions(stateMachineArn=arn)["executions"]):
        assert time.monotonic() < deadline, "no execution within 1 s of the put"
        time.sleep(0.01)
    assert len(executions) == 1 and executions[0]["startDate"].timestamp() - put_at < 1.0
    described = sfn.describe_execution(executionArn=executions[0]["executionArn"])
    assert json.loads(described["input"]) == {"s3_bucket": "drop", "s3_key": "incoming/photo 1.png"}


def test_start_sync_execution_runs_express_machines_only(session, seeds_machine):
    # botocore prefixes the host with "sync-" for this action, even for an endpoint URL: as with LocalStack
    sfn = session.client("stepfunctions", config=Config(inject_host_prefix=False))
    definition = {"QueryLanguage": "JSONata", "StartAt": "Double",
                  "States": {"Double": {"Type": "Pass", "Output": {"n": "{% $states.input.n * 2 %}"}, "End": True}}}
    express = sfn.create_state_machine(name="express", definition=json.dumps(definition), roleArn=ROLE,
                                       type="EXPRESS")["stateMachineArn"]  # fmt: skip
    result = sfn.start_sync_execution(stateMachineArn=express, input='{"n": 21}')
    assert (result["status"], json.loads(result["output"])) == ("SUCCEEDED", {"n": 42})
    with pytest.raises(ClientError) as raised:
        sfn.start_sync_execution(stateMachineArn=seeds_machine, input="{}")
    assert raised.value.response["Error"]["Code"] == "StateMachineTypeNotSupported"


def test_executions_are_found_by_name_with_moto_s_errors_and_idempotency(session):
    """DescribeExecution/GetExecutionHistory and StartExecution's name check go through the seam's index."""
    sfn = session.client("stepfunctions")
    arn = machine(session, "lookup", {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 2, "End": True}}})
    started = {name: sfn.start_execution(stateMachineArn=arn, name=name, input='{"n": 1}')["executionArn"] for name in ("a", "b", "c")}
    for name, execution_arn in started.items():
        described = sfn.describe_execution(executionArn=execution_arn)
        assert (described["name"], described["executionArn"], described["status"]) == (name, execution_arn, "RUNNING")
        assert sfn.get_execution_history(executionArn=execution_arn)["events"][0]["type"] == "ExecutionStarted"
    again = sfn.start_execution(stateMachineArn=arn, name="b", input='{"n": 1}')  # same name and input, still running
    assert again["executionArn"] == started["b"]
    with pytest.raises(ClientError, match="ExecutionAlreadyExists"):
        sfn.start_execution(stateMachineArn=arn, name="b", input='{"n": 2}')
    with pytest.raises(ClientError, match="ExecutionDoesNotExist"):
        sfn.describe_execution(executionArn=started["c"][: -len("c")] + "d")
    newer = sfn.start_execution(stateMachineArn=arn, name="d", input="{}")["executionArn"]
    assert sfn.describe_execution(executionArn=newer)["name"] == "d"  # started after the index was built
