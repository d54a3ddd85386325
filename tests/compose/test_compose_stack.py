"""The docker compose stack, for real: `docker compose up -d --wait`, scenarios, `down -v`.

Needs a Docker engine (skipped with the engine's reason otherwise). The full workflow
scenario suite runs against this stack too, through the `compose_stack` fixture; these tests
cover what only the compose stack has: the model container, LocalStack's SFN_MOCK_CONFIG test
cases and the state file the bootstrap wrote for the host.
"""
from __future__ import annotations

import io
import json
import time
import urllib.request

import pytest
from PIL import Image

from fixtures.compose_fixtures import MOCK_TEST_CASE_OUTCOMES
from scones.local.workflow_client import ImageRef, run_images

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(2400)]


def _png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_state_file_points_the_host_at_the_stack(compose_stack) -> None:
    assert compose_stack.target == "compose"
    assert compose_stack.aws_endpoint_url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(f"{compose_stack.model_server_url}/ping", timeout=5) as response:
        assert response.status == 200
    s3 = compose_stack.client("s3")
    assert s3.head_object(Bucket=compose_stack.bucket, Key="models/model.tar.gz")["ContentLength"] > 0


def test_images_run_through_the_real_workflow(compose_stack) -> None:
    s3 = compose_stack.client("s3")
    s3.put_object(Bucket=compose_stack.bucket, Key="uploads/red.png", Body=_png((200, 30, 30)))
    refs = [
        ImageRef("red.png", compose_stack.bucket, "uploads/red.png"),
        ImageRef("missing.png", compose_stack.bucket, "uploads/missing.png"),
    ]
    red, missing = run_images(compose_stack.client("stepfunctions"), compose_stack.state_machine_arn, refs,
                              timeout_s=600)
    assert red.outcome in ("classified", "review"), red
    assert red.label in compose_stack.class_names
    assert missing.outcome == "failed" and "ImageNotFound" in (missing.reason or ""), missing


@pytest.mark.parametrize("case_name", sorted(MOCK_TEST_CASE_OUTCOMES))
def test_localstack_runs_the_mock_test_cases(compose_stack, case_name: str) -> None:
    """LocalStack loads statemachine/MockConfigFile.json (SFN_MOCK_CONFIG): `<arn>#<TestCase>`."""
    if compose_stack.aws_endpoint_url and ":5000" in compose_stack.aws_endpoint_url:
        pytest.skip("moto does not load Step Functions Local mock configurations")
    sfn = compose_stack.client("stepfunctions")
    started = sfn.start_execution(
        stateMachineArn=f"{compose_stack.state_machine_arn}#{case_name}",
        name=f"mock-{case_name}-{int(time.time())}",
        input=json.dumps({"s3_bucket": compose_stack.bucket, "s3_key": "test/bicycle_s_000513.png"}),
    )
    deadline = time.monotonic() + 120
    while (execution := sfn.describe_execution(executionArn=started["executionArn"]))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{case_name} still running"
        time.sleep(0.5)
    expected = MOCK_TEST_CASE_OUTCOMES[case_name]
    assert execution["status"] == expected["status"], execution
    if expected["status"] == "SUCCEEDED":
        assert json.loads(execution["output"])["outcome"] == expected["outcome"]
    else:
        assert execution["error"] == expected["error"]
