"""The rendered workflow, executed by moto's Step Functions interpreter, ends in one outcome.

Lambda code runs in-process here (an in-process invoker behind the same moto seam as the
process runner, for this module only); the endpoint is a real HTTP server speaking SageMaker's error contract. The embedded
stack's process runner is tested with the stack, not here.
"""
from __future__ import annotations

import importlib
import json
import os
import threading
import time
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from scones.local.deploy.stack import StackConfig, deploy_stack
from scones.local.emulator import moto_seam
from scones.local.emulator.lambda_spec import FunctionSpec, InvocationResult

pytestmark = pytest.mark.integration

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
BIG_PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(300 * 1024)
HANDLERS = [f"scones.lambdas.{f}.handler" for f in
            ("serialize_image", "classify_image", "filter_inferences", "record_outcome")]


class FakeEndpoint(BaseHTTPRequestHandler):
    """Answers like the model server: probabilities, or an AWS error code in x-amzn-ErrorType."""

    answer: dict = {"status": 200, "body": b"[0.99, 0.01]", "error": None}
    calls = 0

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).calls += 1
        self.send_response(self.answer["status"])
        if self.answer["error"]:
            self.send_header("x-amzn-ErrorType", self.answer["error"])
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.answer["body"])))
        self.end_headers()
        self.wfile.write(self.answer["body"])


_environ_lock = threading.Lock()


class InProcessInvoker:
    """Runs the project's handlers in this process; errors shaped like AWS's."""

    def invoke(self, spec: FunctionSpec, code_zip, event: object, log_sink=None) -> InvocationResult:
        module, attr = ("scones." + spec.handler).rsplit(".", 1)
        with _environ_lock:
            saved = {name: os.environ.get(name) for name in spec.environment}
            os.environ.update(spec.environment)
            try:
                return InvocationResult(json.dumps(getattr(importlib.import_module(module), attr)(event, None)), False, "")
            except Exception as error:
                shaped = {"errorType": type(error).__name__, "errorMessage": str(error),
                          "stackTrace": traceback.format_tb(error.__traceback__)}
                return InvocationResult(json.dumps(shaped), True, "")
            finally:
                for name, value in saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value


@pytest.fixture(scope="module")
def workflow(fake_aws_credentials) -> Iterator[tuple[boto3.Session, str, str]]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = ThreadingHTTPServer(("127.0.0.1", 0), FakeEndpoint)
    threading.Thread(target=endpoint.serve_forever, daemon=True).start()
    host, port = server.get_host_and_port()
    moto_url, endpoint_url = f"http://{host}:{port}", f"http://127.0.0.1:{endpoint.server_address[1]}"
    patch = pytest.MonkeyPatch()
    patch.setenv("MOTO_PORT", str(port))  # the interpreter calls Lambda at localhost:$MOTO_PORT
    patch.setenv("AWS_ENDPOINT_URL", moto_url)
    patch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", endpoint_url)
    uninstall = moto_seam.install_lambda_invoker(InProcessInvoker())
    requests.post(f"{moto_url}/moto-api/config",
                  json={"stepfunctions": {"execute_state_machine": True}}, timeout=10).raise_for_status()
    for module in HANDLERS:  # their boto3 clients are made at import: point them at this server
        importlib.reload(importlib.import_module(module))
    session = boto3.Session(region_name="us-east-1")
    outputs = deploy_stack(session, StackConfig(
        stack_name="sfn", bucket="sfn-images", endpoint_name="sfn-classifier",
        class_names=("bicycle", "motorcycle"),
        lambda_environment={"AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": endpoint_url}))
    s3 = session.client("s3")
    for key, body in {"ok.png": PNG, "big.png": BIG_PNG, "empty.png": b"", "text.png": b"hello"}.items():
        s3.put_object(Bucket="sfn-images", Key=key, Body=body)
    yield session, outputs.state_machine_arn, outputs.bucket
    uninstall()
    patch.undo()
    endpoint.shutdown()
    endpoint.server_close()
    server.stop()


def execute(workflow, name: str, key: str, answer: dict | None = None) -> dict:
    session, machine, bucket = workflow
    FakeEndpoint.answer = answer or {"status": 200, "body": b"[0.99, 0.01]", "error": None}
    FakeEndpoint.calls = 0
    sfn = session.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=machine, name=name,
                              input=json.dumps({"s3_bucket": bucket, "s3_key": key, "batch": "t"}))["executionArn"]
    deadline = time.monotonic() + 60
    while (result := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{name} still running"
        time.sleep(0.05)
    return result


def record(workflow, key: str) -> dict:
    session, _, bucket = workflow
    return json.loads(session.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


@pytest.mark.parametrize("key", ["ok.png", "big.png"])
def test_confident_image_is_classified(workflow, key):
    result = execute(workflow, f"classified-{key.replace('.', '-')}", key)
    assert result["status"] == "SUCCEEDED", result
    output = json.loads(result["output"])
    assert (output["outcome"], output["label"], output["confidence"]) == ("classified", "bicycle", 0.99)
    assert output["s3_key"] == key and output["batch"] == "t" and "image_data" not in output


def test_low_confidence_goes_to_review_with_a_record(workflow):
    result = execute(workflow, "low", "ok.png", {"status": 200, "body": b"[0.6, 0.4]", "error": None})
    output = json.loads(result["output"])
    assert result["status"] == "SUCCEEDED" and output["outcome"] == "review"
    assert output["review_record"] == "s3://sfn-images/review/low.json"
    saved = record(workflow, "review/low.json")
    assert saved["execution_id"] == result["executionArn"] and saved["image"] == "s3://sfn-images/ok.png"
    assert saved["inferences"] == [0.6, 0.4] and "0.6000" in saved["reason"] and saved["threshold"] == 0.93


@pytest.mark.parametrize(("key", "error"), [("missing.png", "ImageNotFound"), ("empty.png", "EmptyImage"),
                                            ("text.png", "NotAnImage")])
def test_bad_input_fails_with_the_named_error_recorded(workflow, key, error):
    name = f"bad-{key.replace('.', '-')}"
    result = execute(workflow, name, key)
    assert (result["status"], result["error"]) == ("FAILED", error)
    assert key in result["cause"] and not result["cause"].startswith("{")
    saved = record(workflow, f"failed/{name}.json")
    assert (saved["error"], saved["cause"], saved["s3_key"]) == (error, result["cause"], key)


@pytest.mark.slow
def test_transient_endpoint_error_is_retried_then_recorded(workflow):
    not_ready = {"status": 429, "body": b'{"message": "loading"}', "error": "ModelNotReadyException"}
    result = execute(workflow, "not-ready", "ok.png", not_ready)
    assert (result["status"], result["error"]) == ("FAILED", "ModelNotReadyException")
    assert FakeEndpoint.calls == 4  # the first try and three retries with backoff
    assert record(workflow, "failed/not-ready.json")["error"] == "ModelNotReadyException"


def test_permanent_endpoint_error_is_not_retried(workflow):
    model_error = {"status": 424, "body": b'{"message": "bad weights"}', "error": "ModelError"}
    result = execute(workflow, "model-error", "ok.png", model_error)
    assert (result["status"], result["error"], FakeEndpoint.calls) == ("FAILED", "ModelError", 1)


def test_failure_the_function_cannot_record_fails_with_the_original_error_recorded_by_the_state_machine(workflow):
    session, _, bucket = workflow
    endpoint_url = os.environ["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"]
    outputs = deploy_stack(session, StackConfig(
        stack_name="norecord", bucket="norecord-images", endpoint_name="sfn-classifier",
        class_names=("bicycle", "motorcycle"),
        lambda_environment={"AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": endpoint_url, "BUCKET": "no-such-bucket"}))
    result = execute((session, outputs.state_machine_arn, bucket), "unrecorded", "missing.png")
    assert (result["status"], result["error"]) == ("FAILED", "ImageNotFound")
    assert "missing.png" in result["cause"]
    saved = record((session, outputs.state_machine_arn, outputs.bucket), "failed/unrecorded.json")
    assert (saved["error"], saved["recorded_by"], saved["execution_id"]) == ("ImageNotFound", "state machine", result["executionArn"])
    assert saved["recording_error"] == "NoSuchBucket" and "PutObject" in saved["recording_cause"]
