"""Lambda tasks that fail to run, through a real moto_host process (our process runner) over HTTP and real boto3.

A throttle is named as AWS names it, so a Retry or Catch on that name applies: "When Lambda hits the maximum
number of invocations, the error is Lambda.TooManyRequestsException" (Step Functions Developer Guide, "Handle
Lambda service exceptions"). And when the workflow's own record_outcome function dies (throttled, killed by its
timeout), the image still ends failed with a record: the state machine writes it to S3 itself."""
from __future__ import annotations

import io
import json
import socket
import time
import uuid
import zipfile
from collections.abc import Iterator

import boto3
import pytest

from scones.local.deploy.iam_policies import trust_policy
from scones.local.deploy.stack import StackConfig, deploy_stack, function_name
from scones.local.stacks.embedded import start_moto_host, stop_process_group
from scones.local.workflow_client import ImageRef, run_images

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/sfn"
THROTTLE = "Lambda.TooManyRequestsException"


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory: pytest.TempPathFactory, fake_aws_credentials) -> Iterator[str]:
    process, url = start_moto_host(tmp_path_factory.mktemp("moto") / "moto.log", "us-east-1")
    yield url
    stop_process_group(process.pid)


@pytest.fixture(scope="module")
def throttled_arn(moto_url: str) -> str:
    """A function with reserved concurrency 0: AWS throttles every invoke of it."""
    iam = boto3.client("iam", region_name="us-east-1", endpoint_url=moto_url)
    iam.create_role(RoleName="sfn", AssumeRolePolicyDocument=json.dumps(trust_policy("lambda.amazonaws.com")))
    lam = boto3.client("lambda", region_name="us-east-1", endpoint_url=moto_url)
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("fn.py", "def handler(event, context):\n    return event\n")
    arn = lam.create_function(FunctionName="throttled", Runtime="python3.11", Role=ROLE, Handler="fn.handler",
                              Code={"ZipFile": code.getvalue()})["FunctionArn"]  # fmt: skip
    lam.put_function_concurrency(FunctionName="throttled", ReservedConcurrentExecutions=0)
    return arn


def task(resource_form: str, function_arn: str, **fields: object) -> dict:
    """A Task invoking the function through the optimised integration or with its ARN as Resource."""
    if resource_form == "optimised":
        return {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": function_arn, "Payload.$": "$"}, **fields}  # fmt: skip
    return {"Type": "Task", "Resource": function_arn, **fields}


def run(moto_url: str, definition: dict) -> tuple[dict, list[dict]]:
    sfn = boto3.client("stepfunctions", region_name="us-east-1", endpoint_url=moto_url)
    machine = sfn.create_state_machine(name=f"sm-{uuid.uuid4().hex[:8]}", definition=json.dumps(definition),
                                       roleArn=ROLE)["stateMachineArn"]  # fmt: skip
    execution = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"image": "x.png"}))["executionArn"]
    deadline = time.monotonic() + 30
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "execution still running"
        time.sleep(0.02)
    return described, sfn.get_execution_history(executionArn=execution)["events"]


@pytest.mark.parametrize("resource_form", ["optimised", "function-arn"])
def test_throttled_task_is_caught_by_the_aws_error_name(moto_url, throttled_arn, resource_form):
    definition = {"StartAt": "Invoke", "States": {
        "Invoke": task(resource_form, throttled_arn, End=True,
                       Catch=[{"ErrorEquals": [THROTTLE], "ResultPath": "$.failure", "Next": "Throttled"}]),
        "Throttled": {"Type": "Pass", "End": True},
    }}  # fmt: skip
    described, _ = run(moto_url, definition)
    assert described["status"] == "SUCCEEDED", described
    failure = json.loads(described["output"])["failure"]
    assert failure["Error"] == THROTTLE
    # The cause as AWS writes a Lambda API error: the message, then the service, status and error code.
    assert "Service: AWSLambda; Status Code: 429; Error Code: TooManyRequestsException" in failure["Cause"]


@pytest.mark.parametrize("resource_form", ["optimised", "function-arn"])
def test_throttled_task_is_retried_under_the_aws_error_name(moto_url, throttled_arn, resource_form):
    retry = [{"ErrorEquals": [THROTTLE], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 1}]
    definition = {"StartAt": "Invoke", "States": {"Invoke": task(resource_form, throttled_arn, End=True, Retry=retry)}}
    described, events = run(moto_url, definition)
    assert (described["status"], described["error"]) == ("FAILED", THROTTLE)
    scheduled = [e for e in events if e["type"] in ("TaskScheduled", "LambdaFunctionScheduled")]
    assert len(scheduled) == 3, "the first try and two retries"


@pytest.fixture(scope="module")
def stack(moto_url: str) -> Iterator[tuple[boto3.Session, str, str]]:
    """The workflow as the deploy path makes it (no model: the failures below happen before classify)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL", moto_url)
        session = boto3.Session(region_name="us-east-1")
        outputs = deploy_stack(session, StackConfig(stack_name="rec", bucket="rec-images", endpoint_name="rec-classifier",
                                                    class_names=("bicycle", "motorcycle")))  # fmt: skip
        yield session, outputs.state_machine_arn, outputs.bucket


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A URL whose server accepts connections and never answers: a client there waits out its timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def _throttle(lam, name: str, black_hole: str) -> None:
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)


def _time_out(lam, name: str, black_hole: str) -> None:
    variables = lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
    lam.update_function_configuration(FunctionName=name, Timeout=1,
                                      Environment={"Variables": {**variables, "AWS_ENDPOINT_URL_S3": black_hole}})  # fmt: skip


@pytest.mark.parametrize(("break_it", "recording_error", "tries"), [(_throttle, THROTTLE, 4), (_time_out, "Sandbox.Timedout", 2)],
                         ids=["throttled", "timed-out"])  # fmt: skip
def test_an_image_whose_failure_record_function_dies_still_ends_failed_with_a_record(stack, black_hole, break_it,
                                                                                      recording_error, tries):  # fmt: skip
    session, machine, bucket = stack
    lam, s3 = session.client("lambda"), session.client("s3")
    name = function_name("rec", "record_outcome")
    configuration = lam.get_function_configuration(FunctionName=name)
    break_it(lam, name, black_hole)
    try:
        [outcome] = run_images(session.client("stepfunctions"), machine, [ImageRef("missing.png", bucket, "missing.png")],
                               timeout_s=60)  # fmt: skip
    finally:
        lam.delete_function_concurrency(FunctionName=name)
        lam.update_function_configuration(FunctionName=name, Timeout=configuration["Timeout"],
                                          Environment=configuration["Environment"])  # fmt: skip
    assert outcome.outcome == "failed" and outcome.reason.startswith("ImageNotFound"), outcome
    key = f"failed/{outcome.execution_arn.rsplit(':', 1)[-1]}.json"
    record = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert (record["error"], record["recording_error"], record["recorded_by"]) == ("ImageNotFound", recording_error, "state machine")
    assert record["execution_input"] == {"s3_bucket": bucket, "s3_key": "missing.png"}
    assert record["execution_id"] == outcome.execution_arn and "missing.png" in record["cause"]
    events = session.client("stepfunctions").get_execution_history(executionArn=outcome.execution_arn)["events"]
    recording = [e for e in events if e["type"] == "TaskScheduled" and name in e["taskScheduledEventDetails"]["parameters"]]
    assert len(recording) == tries, "the workflow's Retry of the record function"
