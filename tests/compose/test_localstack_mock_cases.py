"""LocalStack's SFN_MOCK_CONFIG test cases, on the compose stack's default (LocalStack) profile.

Not `docker`-marked: LocalStack 4.14 cannot run on a machine without a registry and GitHub
(it pulls the Lambda runtime images and downloads its init binary at run time), so these skip
with that reason where the image is absent, even under SCONES_REQUIRE_DOCKER=1. moto does not
load mock configurations.
"""
from __future__ import annotations

import json
import time

import pytest

from fixtures.compose_fixtures import MOCK_TEST_CASE_OUTCOMES, ComposeStack

pytestmark = [pytest.mark.localstack, pytest.mark.slow, pytest.mark.timeout(2400)]


@pytest.mark.parametrize("case_name", sorted(MOCK_TEST_CASE_OUTCOMES))
def test_localstack_runs_the_mock_test_cases(localstack_stack: ComposeStack, case_name: str) -> None:
    """LocalStack loads statemachine/MockConfigFile.json (SFN_MOCK_CONFIG): `<arn>#<TestCase>`; moto does not."""
    state = localstack_stack.state
    sfn = state.client("stepfunctions")
    started = sfn.start_execution(
        stateMachineArn=f"{state.state_machine_arn}#{case_name}",
        name=f"mock-{case_name}-{int(time.time())}",
        input=json.dumps({"s3_bucket": state.bucket, "s3_key": "test/bicycle_s_000513.png"}),
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
