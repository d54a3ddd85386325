"""Lambda tasks whose invoke fails (a throttle), through a real moto_host process over HTTP and real boto3:
Step Functions names the error as AWS does, so a Retry or Catch on that name applies.

AWS: "When Lambda hits the maximum number of invocations, the error is Lambda.TooManyRequestsException"
(Step Functions Developer Guide, "Handle Lambda service exceptions")."""
from __future__ import annotations

import io
import json
import time
import uuid
import zipfile
from collections.abc import Iterator

import boto3
import pytest

from scones.local.deploy.iam_policies import trust_policy
from scones.local.stacks.embedded import start_moto_host, stop_process_group

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
