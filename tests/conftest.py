"""Shared fixtures: each area's real servers and artifacts, in tests/fixtures/."""

import os
from pathlib import Path

pytest_plugins = [
    "fixtures.aws_fixtures",
    "fixtures.model_fixtures",
    "fixtures.server_fixtures",
    "fixtures.stack_fixtures",
    "fixtures.compose_fixtures",
]

# One Lambda runtime venv (awslambdaric + boto3, built once by pip) for every stack the tests start,
# whatever SCONES_HOME each uses.
os.environ.setdefault("SCONES_LAMBDA_RUNTIME_CACHE", str(Path(__file__).resolve().parents[1] / ".scones" / "lambda-runtime"))

def pytest_runtest_makereport(item, call):
    """SCONES_REQUIRE_DOCKER=1 (set by .ci/run): a docker-marked test that skips is a failure.

    CI provides the engine (the suite starts its own), so a skip there means the docker part did
    not run, and CI must not go green by skipping it.
    """
    import os

    import pytest

    if os.environ.get("SCONES_REQUIRE_DOCKER") != "1" or item.get_closest_marker("docker") is None:
        return None
    if call.excinfo is not None and call.excinfo.errisinstance(pytest.skip.Exception):
        report = pytest.TestReport.from_item_and_call(item, call)
        report.outcome = "failed"
        report.longrepr = f"SCONES_REQUIRE_DOCKER=1 but this docker test skipped: {call.excinfo.value}"
        return report
    return None
