"""The process runner behind a real moto_host process, driven only through boto3."""
from __future__ import annotations

import base64
import io
import json
import os
import signal
import time
import uuid
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
from botocore.config import Config
import pytest

from scones.local.stacks.embedded import port_is_listening, start_moto_host, stop_process_group

pytestmark = pytest.mark.integration

FUNCTION_SOURCE = '''
import base64, logging, os, time

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
    return {"image_data": base64.b64encode(b"png bytes"), "raw": b"text"}


def returns_a_set(event, context):
    return {1, 2}


def private_tmp(event, context):
    """The starter's serialize step: write /tmp/image.png, read it back a little later."""
    path = "/tmp/image.png"
    with open(path, "w") as f:
        f.write(event["marker"])
    time.sleep(event.get("seconds", 0.2))
    with open(path) as f:
        return {"read": f.read(), "pid": os.getpid(), "tmp_on": os.statvfs("/tmp").f_blocks * os.statvfs("/tmp").f_frsize}


def imports(event, context):
    found = {}
    for name in event["modules"]:
        try:
            __import__(name)
            found[name] = True
        except ImportError:
            found[name] = False
    return found


def write_code_dir(event, context):
    try:
        open(os.path.join(os.environ["LAMBDA_TASK_ROOT"], "x"), "w").close()
        return "writable"
    except OSError as exc:
        return type(exc).__name__
'''

# The Udacity starter's serialize function as students wrote it: /tmp/image.png, base64 bytes in the result.
STARTER_SERIALIZE = '''
import json, boto3, base64

s3 = boto3.client("s3")

def lambda_handler(event, context):
    key = event["s3_key"]
    bucket = event["s3_bucket"]
    s3.download_file(bucket, key, "/tmp/image.png")
    with open("/tmp/image.png", "rb") as f:
        image_data = base64.b64encode(f.read())
    return {"statusCode": 200, "body": {"image_data": image_data, "s3_bucket": bucket, "s3_key": key, "inferences": []}}
'''

PIL_SOURCE = "import PIL\n\ndef handler(event, context):\n    return 1\n"


@pytest.fixture(scope="module")
def moto_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    log = tmp_path_factory.mktemp("moto-host") / "moto.log"
    process, url = start_moto_host(log, "us-east-1", lambda_environments=4)  # the concurrency tests run 4 at once
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
        zf.writestr("uses_pil.py", PIL_SOURCE)
        zf.writestr("starter.py", STARTER_SERIALIZE)

    def create(handler: str, timeout: int = 10, env: dict[str, str] | None = None, **extra) -> str:
        name = f"fn-{handler.rsplit('.', 1)[-1]}-{uuid.uuid4().hex[:6]}"
        lambda_client.create_function(
            FunctionName=name, Runtime="python3.11", Role=role, Handler=handler if "." in handler else f"pkg.functions.{handler}",
            Code={"ZipFile": archive.getvalue()}, Timeout=timeout, Environment={"Variables": env or {}}, **extra,
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
    assert not any("awslambdaric" in frame for frame in payload["stackTrace"]), "runtime frames leak into stackTrace"
    assert payload["requestId"], "AWS's error document names the request"
    assert "[ERROR] ThresholdConfidenceNotMet" in logs


def test_bytes_in_a_result_become_strings_as_awslambdaric_marshals_them(lambda_client, deploy):
    payload, function_error, _ = invoke(lambda_client, deploy("returns_bytes"))
    assert function_error is None
    assert payload == {"image_data": base64.b64encode(b"png bytes").decode(), "raw": "text"}


def test_unserializable_result_is_a_marshal_error(lambda_client, deploy):
    payload, function_error, _ = invoke(lambda_client, deploy("returns_a_set"))
    assert function_error == "Unhandled" and payload["errorType"] == "Runtime.MarshalError"


@pytest.mark.parametrize("event", ["a string", None, [1, 2], 3.5, True, {}])
def test_any_json_value_reaches_the_handler_unchanged(lambda_client, deploy, event):
    name = deploy("echo")
    response = lambda_client.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    assert "FunctionError" not in response
    assert json.loads(response["Payload"].read())["event"] == event


def test_empty_payload_reaches_the_handler_as_an_empty_object(lambda_client, deploy):
    response = lambda_client.invoke(FunctionName=deploy("echo"))
    assert json.loads(response["Payload"].read())["event"] == {}


def test_invalid_json_payload_is_invalid_request_content(lambda_client, deploy):
    name = deploy("echo")
    with pytest.raises(lambda_client.exceptions.InvalidRequestContentException):
        lambda_client.invoke(FunctionName=name, Payload=b"{not json")


def test_payload_over_6_mb_is_request_entity_too_large(lambda_client, deploy):
    name = deploy("echo")
    with pytest.raises(lambda_client.exceptions.RequestTooLargeException):
        lambda_client.invoke(FunctionName=name, Payload=json.dumps("x" * 6_300_000).encode())


def test_host_packages_do_not_leak_into_the_runtime(lambda_client, deploy):
    found, function_error, _ = invoke(lambda_client, deploy("imports"), {"modules": ["boto3", "botocore", "json", "PIL", "torch", "scones", "moto"]})
    assert function_error is None
    assert found == {"boto3": True, "botocore": True, "json": True, "PIL": False, "torch": False, "scones": False, "moto": False}


def test_module_level_import_of_a_missing_package_is_runtime_import_module_error(lambda_client, deploy):
    payload, function_error, logs = invoke(lambda_client, deploy("uses_pil.handler"))
    assert function_error == "Unhandled"
    assert payload["errorType"] == "Runtime.ImportModuleError"
    assert payload["errorMessage"] == "Unable to import module 'uses_pil': No module named 'PIL'"
    assert "Runtime.ImportModuleError" in logs


def test_missing_handler_is_runtime_handler_not_found(lambda_client, deploy):
    payload, function_error, _ = invoke(lambda_client, deploy("pkg.functions.no_such_handler"))
    assert function_error and payload["errorType"] == "Runtime.HandlerNotFound"


def test_concurrent_executions_never_see_each_others_tmp(lambda_client, deploy):
    name = deploy("private_tmp")
    markers = [f"image-{i}" for i in range(12)]
    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda m: invoke(lambda_client, name, {"marker": m, "seconds": 0.3}), markers))
    assert all(error is None for _, error, _ in results), results
    assert [payload["read"] for payload, _, _ in results] == markers
    assert len({payload["pid"] for payload, _, _ in results}) > 1, "no two environments ran at once"


def test_layers_are_importable_from_opt_python(lambda_client, deploy):
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as zf:
        zf.writestr("python/shared_helpers.py", "ANSWER = 42\n")
    layer_arn = lambda_client.publish_layer_version(LayerName="helpers", Content={"ZipFile": layer.getvalue()},
                                                    CompatibleRuntimes=["python3.11"])["LayerVersionArn"]  # fmt: skip
    found, function_error, _ = invoke(lambda_client, deploy("imports", Layers=[layer_arn]), {"modules": ["shared_helpers"]})
    assert function_error is None and found == {"shared_helpers": True}
    found, _, _ = invoke(lambda_client, deploy("imports"), {"modules": ["shared_helpers"]})
    assert found == {"shared_helpers": False}, "a layer leaked into a function without it"


def test_tmp_is_sized_by_ephemeral_storage(lambda_client, deploy):
    from scones.local.emulator.lambda_sandbox import namespaces_available

    if not namespaces_available():
        pytest.skip("no mount namespaces here (not root): /tmp is a TMPDIR directory, not a sized tmpfs")
    payload, _, _ = invoke(lambda_client, deploy("private_tmp", EphemeralStorage={"Size": 1024}), {"marker": "x", "seconds": 0})
    assert payload["tmp_on"] == 1024 * 1024 * 1024


def test_code_directory_is_read_only(lambda_client, deploy):
    from scones.local.emulator.lambda_sandbox import namespaces_available

    if not namespaces_available():
        pytest.skip("no mount namespaces here (not root): the code directory stays writable")
    assert invoke(lambda_client, deploy("write_code_dir"))[0] == "OSError"


def test_reserved_concurrency_throttles_with_too_many_requests(lambda_client, deploy, moto_host):
    name = deploy("sleep")
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    no_retries = boto3.client("lambda", region_name="us-east-1", endpoint_url=moto_host[0],
                              config=Config(retries={"total_max_attempts": 1}))  # fmt: skip
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(invoke, lambda_client, name, {"seconds": 1.5})
        time.sleep(0.7)
        with pytest.raises(no_retries.exceptions.TooManyRequestsException):
            no_retries.invoke(FunctionName=name, Payload=b"{}")
        assert slow.result()[1] is None


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


def _runtime_pids(moto_pid: int) -> list[int]:
    """Every awslambdaric process under the moto host (the execution environments)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"awslambdaric" in (entry / "cmdline").read_bytes():
                status = (entry / "status").read_text()
                parent = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
                if parent == moto_pid:
                    pids.append(int(entry.name))
        except (OSError, StopIteration):
            continue
    return pids


def test_killed_worker_ends_its_invocation_with_runtime_exit_error(lambda_client, deploy, moto_host):
    name = deploy("sleep")
    invoke(lambda_client, name, {"seconds": 0})
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(invoke, lambda_client, name, {"seconds": 5})
        time.sleep(0.5)
        for pid in _runtime_pids(moto_host[1]):
            os.kill(pid, signal.SIGKILL)
        started = time.monotonic()
        payload, function_error, _ = running.result(timeout=5)
    assert time.monotonic() - started < 2
    assert function_error == "Unhandled" and payload["errorType"] == "Runtime.ExitError"
    assert payload["errorMessage"].endswith("Error: Runtime exited with error: signal: killed")
    assert invoke(lambda_client, name, {"seconds": 0})[1] is None, "the environment was not replaced"


def _start_executions(moto_host, function_arn: str, inputs: list[dict]) -> tuple[object, list[str]]:
    sfn = boto3.client("stepfunctions", region_name="us-east-1", endpoint_url=moto_host[0])
    definition = {"StartAt": "Task", "States": {"Task": {"Type": "Task", "Resource": function_arn, "End": True}}}
    machine = sfn.create_state_machine(name=f"sm-{uuid.uuid4().hex[:6]}", definition=json.dumps(definition),
                                       roleArn="arn:aws:iam::123456789012:role/runner-test")["stateMachineArn"]  # fmt: skip
    arns = [sfn.start_execution(stateMachineArn=machine, name=f"run-{i}", input=json.dumps(item))["executionArn"] for i, item in enumerate(inputs)]
    return sfn, arns


def _wait_for_all(sfn, arns: list[str], timeout_s: float = 90) -> list[dict]:
    finished: dict[str, dict] = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and len(finished) < len(arns):
        for arn in arns:
            if arn not in finished:
                described = sfn.describe_execution(executionArn=arn)
                if described["status"] != "RUNNING":
                    finished[arn] = described
        time.sleep(0.2)
    assert len(finished) == len(arns), f"{len(arns) - len(finished)} of {len(arns)} executions never ended"
    return [finished[arn] for arn in arns]


@pytest.fixture(scope="module")
def starter_images(moto_host) -> list[dict]:
    """25 distinct objects in S3 for the starter's serialize function."""
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_host[0])
    s3.create_bucket(Bucket="starter-images")
    inputs = []
    for i in range(25):
        s3.put_object(Bucket="starter-images", Key=f"test/image-{i}.png", Body=f"image {i} ".encode() * (1000 + i))
        inputs.append({"s3_bucket": "starter-images", "s3_key": f"test/image-{i}.png"})
    return inputs


def test_starter_serialize_runs_unchanged_and_correctly_under_25_concurrent_executions(moto_host, deploy, lambda_client, starter_images):
    arn = lambda_client.get_function(FunctionName=deploy("starter.lambda_handler"))["Configuration"]["FunctionArn"]
    sfn, arns = _start_executions(moto_host, arn, starter_images)
    results = _wait_for_all(sfn, arns)
    assert [r["status"] for r in results] == ["SUCCEEDED"] * 25, [r.get("error") for r in results]
    for item, result in zip(starter_images, results):
        body = json.loads(result["output"])["body"]
        i = int(item["s3_key"].split("-")[1].split(".")[0])
        assert base64.b64decode(body["image_data"]) == f"image {i} ".encode() * (1000 + i), f"execution {i} got another image"


def test_killing_workers_twice_mid_run_loses_no_execution(moto_host, deploy, lambda_client, starter_images):
    """100 starter executions while every runtime process is killed twice: each one succeeds with its
    own image or fails with Runtime.ExitError; none is left RUNNING."""
    arn = lambda_client.get_function(FunctionName=deploy("starter.lambda_handler"))["Configuration"]["FunctionArn"]
    inputs = [starter_images[i % 25] for i in range(100)]
    sfn, arns = _start_executions(moto_host, arn, inputs)
    killed = 0
    for _ in range(2):
        time.sleep(0.8)
        for pid in _runtime_pids(moto_host[1]):
            os.kill(pid, signal.SIGKILL)
            killed += 1
    results = _wait_for_all(sfn, arns)
    failed = [r for r in results if r["status"] != "SUCCEEDED"]
    assert all(r["status"] == "FAILED" and r["error"] == "Runtime.ExitError" for r in failed), failed
    for item, result in zip(inputs, results):
        if result["status"] == "SUCCEEDED":
            assert json.loads(result["output"])["body"]["s3_key"] == item["s3_key"]
    print(f"killed {killed} runtime processes: {len(results) - len(failed)} succeeded, {len(failed)} failed with Runtime.ExitError, 0 lost")
    assert killed, "no runtime process was running when the kills came"


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
