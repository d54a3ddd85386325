"""Shared fixtures: each area's real servers and artifacts, in tests/fixtures/."""

pytest_plugins = [
    "fixtures.aws_fixtures",
    "fixtures.model_fixtures",
    "fixtures.server_fixtures",
    "fixtures.stack_fixtures",
    "fixtures.compose_fixtures",
]
