"""`scones monitor report` option handling that needs no AWS (bad input fails fast and clearly)."""
from __future__ import annotations

from click.testing import CliRunner

from scones.local.cli.main import main
from scones.local.stacks.state import StackState
from scones.model.monitor.cli import default_capture_uri


def run(*args: str, home) -> object:
    return CliRunner().invoke(main, ["monitor", "report", *args], env={"SCONES_HOME": str(home)})


def test_without_a_stack_the_capture_location_is_required(tmp_path):
    result = run(home=tmp_path)
    assert result.exit_code == 2 and "pass --capture" in result.output


def test_fail_on_drift_needs_a_baseline(tmp_path):
    result = run("--capture", "s3://bucket/capture/ep", "--fail-on-drift", home=tmp_path)
    assert result.exit_code == 2 and "--fail-on-drift needs --baseline" in result.output


def test_bad_since_and_bad_uri_are_named(tmp_path):
    result = run("--capture", "s3://bucket/capture/ep", "--since", "yesterday", home=tmp_path)
    assert result.exit_code == 1 and "--since 'yesterday'" in result.output
    result = run("--capture", "bucket/capture/ep", home=tmp_path)
    assert result.exit_code == 1 and "not an s3://bucket/prefix URI" in result.output


def test_running_stack_gives_the_capture_location():
    state = StackState(target="embedded", region="us-east-1", aws_endpoint_url="http://127.0.0.1:1", model_server_url=None,
                       endpoint_name="scones-image-classifier", bucket="scones-images", state_machine_arn="arn",
                       stack_name="scones", threshold=0.93, class_names=["bicycle", "motorcycle"])
    assert default_capture_uri(state) == "s3://scones-images/capture/scones-image-classifier"
    assert default_capture_uri(None) is None
