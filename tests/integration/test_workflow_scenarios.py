"""The serialize → classify → filter chain end to end, on a real stack.

Real moto server (S3, Lambda, Step Functions, IAM, Logs), real Lambda code in worker
processes, the real model server. The same scenarios run on every stack: the embedded one
here, the docker compose one where an engine is reachable.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from scones.local.workflow_client import ImageRef, Outcome, run_images

pytestmark = pytest.mark.integration


@pytest.fixture(params=["embedded", pytest.param("compose", marks=[pytest.mark.docker, pytest.mark.slow])],
                scope="module")
def stack(request):
    """Each scenario once per stack; the compose stack (moto profile) skips itself without a Docker engine."""
    fixture = {"embedded": "embedded_stack", "compose": "compose_stack"}[request.param]
    return request.getfixturevalue(fixture)


@pytest.fixture
def set_threshold(stack):
    """Change the deployed filter function's THRESHOLD for one test, on whichever stack."""
    from scones.local.deploy.stack import function_name

    lambda_ = stack.state.boto3_session().client("lambda")
    name = function_name(stack.state.stack_name, "filter_inferences")
    original = lambda_.get_function_configuration(FunctionName=name)["Environment"]["Variables"]

    def apply(threshold: float) -> None:
        variables = {**original, "THRESHOLD": str(threshold)}
        lambda_.update_function_configuration(FunctionName=name, Environment={"Variables": variables})

    yield apply
    lambda_.update_function_configuration(FunctionName=name, Environment={"Variables": original})


def put_and_run(stack, body: bytes | None, key: str | None = None, timeout_s: float = 120) -> Outcome:
    state = stack.state
    key = key or f"test/{uuid.uuid4().hex[:8]}.png"
    s3 = state.boto3_session().client("s3")
    if body is not None:
        s3.put_object(Bucket=state.bucket, Key=key, Body=body)
    sfn = state.boto3_session().client("stepfunctions")
    [outcome] = run_images(sfn, state.state_machine_arn, [ImageRef(key, state.bucket, key)], timeout_s=timeout_s)
    return outcome


def read_record(stack, uri: str) -> dict:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    s3 = stack.state.boto3_session().client("s3")
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def failure_record(stack, outcome: Outcome) -> dict:
    name = outcome.execution_arn.rsplit(":", 1)[-1]
    return read_record(stack, f"s3://{stack.state.bucket}/failed/{name}.json")


def test_learnable_images_are_classified_with_their_label(stack, sample_images):
    for label in stack.state.class_names:
        outcome = put_and_run(stack, sample_images[label][0])
        assert outcome.outcome == "classified", outcome
        assert outcome.label == label
        assert outcome.confidence >= stack.state.threshold


def test_low_confidence_goes_to_review_with_a_record(stack, sample_images, set_threshold):
    set_threshold(0.9999)
    blend = Image.blend(
        Image.open(io.BytesIO(sample_images[stack.state.class_names[0]][0])).convert("RGB"),
        Image.open(io.BytesIO(sample_images[stack.state.class_names[1]][0])).convert("RGB"),
        0.5,
    )
    buffer = io.BytesIO()
    blend.save(buffer, format="PNG")
    outcome = put_and_run(stack, buffer.getvalue(), key="test/blend.png")
    assert outcome.outcome == "review", outcome
    assert "ThresholdConfidenceNotMet" in outcome.reason or "0.9999" in outcome.reason

    sfn = stack.state.boto3_session().client("stepfunctions")
    output = json.loads(sfn.describe_execution(executionArn=outcome.execution_arn)["output"])
    record = read_record(stack, output["review_record"])
    assert output["review_record"].startswith(f"s3://{stack.state.bucket}/review/")
    assert record["s3_key"] == "test/blend.png"
    assert record["image"] == f"s3://{stack.state.bucket}/test/blend.png"
    assert len(record["inferences"]) == len(stack.state.class_names)
    assert record["label"] == outcome.label
    assert record["reason"]
    assert record["execution_id"].endswith(outcome.execution_arn.rsplit(":", 1)[-1])


@pytest.mark.parametrize(
    ("body", "error"),
    [(None, "ImageNotFound"), (b"", "EmptyImage"), (b"this is not an image at all", "NotAnImage")],
    ids=["missing", "empty", "not-an-image"],
)
def test_bad_input_fails_with_the_named_reason_recorded(stack, body, error):
    outcome = put_and_run(stack, body)
    assert outcome.outcome == "failed"
    assert outcome.reason.startswith(error), outcome.reason
    record = failure_record(stack, outcome)
    assert record["error"] == error
    assert record["cause"]


def test_an_image_over_the_step_functions_payload_limit_is_classified(stack, sample_images):
    label = stack.state.class_names[0]
    small = Image.open(io.BytesIO(sample_images[label][0])).convert("RGB")
    buffer = io.BytesIO()
    small.resize((512, 512), Image.NEAREST).save(buffer, format="PNG", compress_level=0)
    assert len(buffer.getvalue()) > 256 * 1024
    outcome = put_and_run(stack, buffer.getvalue(), key="test/large.png")
    assert outcome.outcome == "classified", outcome
    assert outcome.label == label


def test_fifty_images_at_once_give_fifty_outcomes(stack, sample_images):
    state = stack.state
    s3 = state.boto3_session().client("s3")
    images = [png for label in state.class_names for png in sample_images[label]][:50]
    images = (images * 50)[:50]
    keys = [f"batch/{i:02d}.png" for i in range(50)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: s3.put_object(Bucket=state.bucket, Key=kv[0], Body=kv[1]), zip(keys, images)))
    sfn = state.boto3_session().client("stepfunctions")
    outcomes = run_images(sfn, state.state_machine_arn, [ImageRef(k, state.bucket, k) for k in keys], timeout_s=240)
    assert [o.image for o in outcomes] == keys
    assert len({o.execution_arn for o in outcomes}) == 50
    assert all(o.outcome in ("classified", "review") for o in outcomes), [o for o in outcomes if o.outcome == "failed"]


def test_endpoint_down_is_retried_then_recorded_and_recovers(stack, sample_images):
    if not hasattr(stack, "stop_model_server"):
        pytest.skip("this stack cannot stop its model server from the test")
    png = sample_images[stack.state.class_names[0]][0]
    stack.stop_model_server()
    try:
        outcome = put_and_run(stack, png, key="test/while-down.png", timeout_s=180)
    finally:
        stack.start_model_server()
    # The embedded stack's endpoint answers for its lost instance as SageMaker's front end does
    # (ServiceUnavailable); the compose stack's classify function calls the model container directly.
    assert outcome.outcome == "failed"
    assert outcome.reason.startswith(("EndpointConnectionError", "ServiceUnavailable")), outcome.reason
    assert failure_record(stack, outcome)["error"] in ("EndpointConnectionError", "ServiceUnavailable")

    again = put_and_run(stack, png, key="test/while-down.png")
    assert again.outcome == "classified", again


def test_classify_command_prints_json_lines_and_exit_code(stack, sample_images, tmp_path):
    good = tmp_path / "good.png"
    good.write_bytes(sample_images[stack.state.class_names[1]][0])
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    env = {**os.environ, "SCONES_HOME": str(stack.home)}
    result = subprocess.run(
        [sys.executable, "-m", "scones.local.cli", "classify", "--json", str(good), str(bad)],
        capture_output=True, text=True, env=env, timeout=180,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["image"] for line in lines] == [str(good), str(bad)], result.stderr
    assert set(lines[0]) == {"image", "outcome", "label", "confidence", "reason", "execution_arn"}
    assert lines[0]["outcome"] == "classified" and lines[0]["label"] == stack.state.class_names[1]
    assert lines[1]["outcome"] == "failed" and lines[1]["reason"].startswith("NotAnImage")
    assert result.returncode == 1
