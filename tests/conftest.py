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
