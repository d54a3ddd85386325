"""The process runner behind a real moto_host process, driven only through boto3."""
from __future__ import annotations

import base64
import io
import json
import time
import uuid
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from scones.local.stacks.embedded import port_is_listening, start_moto_host, stop_process_group

pytestmark = pytest.mark.integration

FUNCTION_SOURCE = '''
import logging, os, time

logger = logging.getLogger()
logger.setLevel(logging.INFO)


class ThresholdConfidenceNotMet(Exception):
    pass


def echo(event, context):
    print("echo got", event)
    logger.info("request %s", context.aws_request_id)
    return {"event": event, "pid": os.getpid(), "remaining_ms": context.get_remaining_time_in_millis()}


def environment(event, context):
    return dict(os.environ)


def fail(event, context):
    raise ThresholdConfidenceNotMet("confidence 0.51 below 0.93")


def sleep(event, context):
    time.sleep(event.get("seconds", 5))
    return {"pid": os.getpid()}


def returns_bytes(event, context):
    return b"not json"
'''


@pytest.fixture(scope="module")
def moto_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    log = tmp_path_factory.mktemp("moto-host") / "moto.log"
    process, url = start_moto_host(log, "us-east-1")
    yield url, process.pid
    stop_process_group(process.pid)
    assert not port_is_listening(int(url.rsplit(":", 1)[1])), "moto_host left its port open"


@pytest.fixture(scope="module")
def lambda_client(moto_host) -> object:
    return boto3.client("lambda", region_name="us-east-1", endpoint_url=moto_host[0])


@pytest.fixture(scope="module")
def deploy(moto_host, lambda_client):
    iam = boto3.client("iam", region_name="us-east-1", endpoint_url=moto_host[0])
    role = iam.create_role(RoleName="runner-test", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("pkg/__init__.py", "")
        zf.writestr("pkg/functions.py", FUNCTION_SOURCE)

    def create(handler: str, timeout: int = 10, env: dict[str, str] | None = None) -> str:
        name = f"fn-{handler}-{uuid.uuid4().hex[:6]}"
        lambda_client.create_function(
            FunctionName=name, Runtime="python3.11", Role=role, Handler=f"pkg.functions.{handler}",
            Code={"ZipFile": archive.getvalue()}, Timeout=timeout, Environment={"Variables": env or {}},
        )  # fmt: skip
        return name

    return create


def invoke(lambda_client, name: str, event: dict | None = None) -> tuple[dict, str | None, str]:
    response = lambda_client.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode(), LogType="Tail")
    logs = base64.b64decode(response.get("LogResult", "")).decode()
    return json.loads(response["Payload"].read()), response.get("FunctionError"), logs


def test_result_is_returned(lambda_client, deploy):
    name = deploy("echo")
    payload, function_error, logs = invoke(lambda_client, name, {"s3_key": "test/a.png"})
    assert function_error is None
    assert payload["event"] == {"s3_key": "test/a.png"}
    assert 0 < payload["remaining_ms"] <= 10_000
    assert "echo got" in logs and "REPORT RequestId:" in logs


def test_handler_error_has_aws_shape_and_is_a_function_error(lambda_client, deploy):
    payload, function_error, logs = invoke(lambda_client, deploy("fail"))
    assert function_error
    assert payload["errorType"] == "ThresholdConfidenceNotMet"
    assert payload["errorMessage"] == "confidence 0.51 below 0.93"
    assert any("pkg/functions.py" in frame for frame in payload["stackTrace"])
    assert not any("lambda_worker" in frame for frame in payload["stackTrace"]), "runtime frames leak into stackTrace"
    assert "[ERROR] ThresholdConfidenceNotMet" in logs


def test_unserializable_result_is_a_marshal_error(lambda_client, deploy):
    payload, function_error, _ = invoke(lambda_client, deploy("returns_bytes"))
    assert function_error and payload["errorType"] == "Runtime.MarshalError"


def test_timeout_kills_the_worker_and_reports_sandbox_timedout(lambda_client, deploy):
    name = deploy("sleep", timeout=1)
    started = time.monotonic()
    payload, function_error, _ = invoke(lambda_client, name, {"seconds": 30})
    assert time.monotonic() - started < 10
    assert function_error
    assert payload["errorType"] == "Sandbox.Timedout"
    assert payload["errorMessage"].startswith("RequestId: ") and payload["errorMessage"].endswith(
        "Error: Task timed out after 1.00 seconds"
    )
    payload, function_error, _ = invoke(lambda_client, name, {"seconds": 0})  # a fresh worker serves the next call
    assert function_error is None and payload["pid"]


def test_warm_worker_is_reused(lambda_client, deploy):
    name = deploy("echo")
    pids = [invoke(lambda_client, name)[0]["pid"] for _ in range(5)]
    assert len(set(pids)) == 1, pids
    started = time.perf_counter()
    for _ in range(20):
        invoke(lambda_client, name)
    per_call_ms = (time.perf_counter() - started) / 20 * 1000
    print(f"warm invocation round trip: {per_call_ms:.1f} ms")
    assert per_call_ms < 500


def test_concurrent_invocations_run_in_parallel_workers(lambda_client, deploy):
    name = deploy("sleep")
    invoke(lambda_client, name, {"seconds": 0})
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: invoke(lambda_client, name, {"seconds": 1}), range(4)))
    elapsed = time.monotonic() - started
    assert all(error is None for _, error, _ in results)
    assert len({payload["pid"] for payload, _, _ in results}) > 1
    assert elapsed < 3.5, f"4 x 1 s invocations took {elapsed:.1f} s: not concurrent"


def test_function_sees_its_environment_not_the_hosts(lambda_client, deploy, moto_host, monkeypatch):
    name = deploy("environment", env={"THRESHOLD": "0.93"})
    env, function_error, _ = invoke(lambda_client, name)
    assert function_error is None
    assert env["THRESHOLD"] == "0.93"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert env["AWS_REGION"] == "us-east-1"
    assert env["AWS_ENDPOINT_URL"] == moto_host[0]
    assert env["AWS_ACCESS_KEY_ID"] and env["AWS_SECRET_ACCESS_KEY"]
    assert "HOME" not in env and "VIRTUAL_ENV" not in env and "PYTEST_CURRENT_TEST" not in env


def test_configuration_update_replaces_warm_workers(lambda_client, deploy):
    name = deploy("environment", env={"THRESHOLD": "0.93"})
    assert invoke(lambda_client, name)[0]["THRESHOLD"] == "0.93"
    lambda_client.update_function_configuration(FunctionName=name, Environment={"Variables": {"THRESHOLD": "0.5"}})
    assert invoke(lambda_client, name)[0]["THRESHOLD"] == "0.5"


def test_logs_land_in_cloudwatch(lambda_client, deploy, moto_host):
    name = deploy("echo")
    invoke(lambda_client, name, {"marker": "find-me"})
    logs = boto3.client("logs", region_name="us-east-1", endpoint_url=moto_host[0])
    group = f"/aws/lambda/{name}"
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert streams and "[$LATEST]" in streams[0]["logStreamName"]
    messages = [e["message"] for e in logs.get_log_events(logGroupName=group, logStreamName=streams[0]["logStreamName"])["events"]]
    assert any(m.startswith("START RequestId:") for m in messages)
    assert any("find-me" in m for m in messages)
    assert any(m.startswith("[INFO]") for m in messages), "logging output of the handler is missing"
    assert any(m.startswith("END RequestId:") for m in messages)
    assert any(m.startswith("REPORT RequestId:") and "Duration:" in m for m in messages)


def test_step_functions_catch_matches_the_handler_error_type(moto_host, deploy, lambda_client):
    url = moto_host[0]
    fail_arn = lambda_client.get_function(FunctionName=deploy("fail"))["Configuration"]["FunctionArn"]
    sleep_arn = lambda_client.get_function(FunctionName=deploy("sleep", timeout=1))["Configuration"]["FunctionArn"]
    sfn = boto3.client("stepfunctions", region_name="us-east-1", endpoint_url=url)
    role = "arn:aws:iam::123456789012:role/runner-test"

    def run(resource: str, event: dict) -> dict:
        definition = {
            "StartAt": "Task",
            "States": {
                "Task": {"Type": "Task", "Resource": resource, "End": True, "ResultPath": "$.result",
                         "Catch": [{"ErrorEquals": ["ThresholdConfidenceNotMet"], "ResultPath": "$.error", "Next": "Review"}]},
                "Review": {"Type": "Pass", "Result": "review", "ResultPath": "$.outcome", "End": True},
            },
        }  # fmt: skip
        machine = sfn.create_state_machine(name=f"sm-{uuid.uuid4().hex[:6]}", definition=json.dumps(definition), roleArn=role)
        execution = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], name="run", input=json.dumps(event))
        for _ in range(200):
            described = sfn.describe_execution(executionArn=execution["executionArn"])
            if described["status"] != "RUNNING":
                return described
            time.sleep(0.1)
        raise AssertionError("execution did not finish")

    caught = run(fail_arn, {})
    assert caught["status"] == "SUCCEEDED"
    output = json.loads(caught["output"])
    assert output["outcome"] == "review" and output["error"]["Error"] == "ThresholdConfidenceNotMet"

    timed_out = run(sleep_arn, {"seconds": 5})
    assert timed_out["status"] == "FAILED" and timed_out["error"] == "Sandbox.Timedout"
