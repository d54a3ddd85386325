"""The compose stack's bootstrap, run against a real moto server over HTTP.

The bootstrap service does exactly this inside docker compose (against LocalStack or moto); here
it trains its small model, deploys with deploy_stack, uploads and unpacks the artifact, and
writes the state file — all observed afterwards through boto3 only.
"""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import boto3
import pytest

from scones.local.stacks import bootstrap
from scones.local.deploy.lambda_package import FUNCTIONS
from scones.local.deploy.stack import STACK_TAG, definition_substitutions, function_name
from scones.statemachine import load_definition, render

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TINY_MODEL = ["--train-per-class", "6", "--test-per-class", "3", "--train-epochs", "1", "--width", "4"]


@pytest.fixture
def stack_env(moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    stack = f"boot-{uuid.uuid4().hex[:8]}"
    home = tmp_path / "home"
    monkeypatch.setenv("SCONES_HOME", str(home))
    monkeypatch.setenv("SCONES_STACK", stack)
    monkeypatch.delenv("SCONES_BUCKET", raising=False)
    monkeypatch.delenv("SCONES_ENDPOINT_NAME", raising=False)
    # main() points its own clients at the emulator through AWS_ENDPOINT_URL; monkeypatch restores it.
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    return {"stack": stack, "home": home, "model_dir": tmp_path / "opt-ml-model", "moto": moto_server}


def _argv(env: dict, *extra: str) -> list[str]:
    return [
        "--aws-endpoint-url", env["moto"],
        "--public-aws-endpoint-url", "http://127.0.0.1:4566",
        "--sagemaker-runtime-url", "http://model:8080",
        "--public-model-url", "http://127.0.0.1:8080",
        "--model-dir", str(env["model_dir"]),
        *TINY_MODEL, *extra,
    ]


def test_bootstrap_trains_deploys_uploads_and_writes_state(stack_env: dict, capsys: pytest.CaptureFixture) -> None:
    assert bootstrap.main(_argv(stack_env)) == 0
    stack, home = stack_env["stack"], stack_env["home"]
    session = boto3.Session(region_name="us-east-1")

    state = json.loads((home / "stack.json").read_text())
    assert state["target"] == "compose"
    assert state["aws_endpoint_url"] == "http://127.0.0.1:4566"
    assert state["model_server_url"] == "http://127.0.0.1:8080"
    assert state["stack_name"] == stack and state["bucket"] == f"{stack}-images"
    assert state["class_names"] == ["bicycle", "motorcycle"]

    sfn = session.client("stepfunctions")
    described = sfn.describe_state_machine(stateMachineArn=state["state_machine_arn"])
    assert described["name"] == f"{stack}-workflow"
    lam = session.client("lambda")
    arns = {}
    for function in FUNCTIONS:
        config = lam.get_function_configuration(FunctionName=function_name(stack, function))
        assert config["Environment"]["Variables"]["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] == "http://model:8080"
        assert lam.list_tags(Resource=config["FunctionArn"])["Tags"][STACK_TAG] == stack
        arns[function] = config["FunctionArn"]
    # The definition is the repository's ASL rendered by the shared deploy path, nothing else.
    assert json.loads(described["definition"]) == json.loads(render(load_definition(), definition_substitutions(arns, state["bucket"])))

    s3 = session.client("s3")
    uploaded = s3.get_object(Bucket=state["bucket"], Key=bootstrap.MODEL_KEY)["Body"].read()
    assert uploaded == (home / "model.tar.gz").read_bytes()
    assert (stack_env["model_dir"] / "code" / "inference.py").is_file()
    assert json.loads((stack_env["model_dir"] / "model.json").read_text())["class_names"] == ["bicycle", "motorcycle"]
    assert "training a small one" in capsys.readouterr().out


def test_bootstrap_again_reuses_the_model_and_updates_in_place(stack_env: dict, capsys: pytest.CaptureFixture) -> None:
    assert bootstrap.main(_argv(stack_env)) == 0
    first = json.loads((stack_env["home"] / "stack.json").read_text())
    (stack_env["model_dir"] / "stale-file").write_text("from an older model")
    capsys.readouterr()

    assert bootstrap.main(_argv(stack_env)) == 0
    second = json.loads((stack_env["home"] / "stack.json").read_text())
    assert "using the cached model" in capsys.readouterr().out
    assert second["state_machine_arn"] == first["state_machine_arn"]
    assert not (stack_env["model_dir"] / "stale-file").exists()


def test_bootstrap_refuses_a_missing_model(stack_env: dict, capsys: pytest.CaptureFixture) -> None:
    missing = stack_env["home"] / "nope.tar.gz"
    assert bootstrap.main(_argv(stack_env, "--model", str(missing))) == 1
    assert f"--model {missing}: no such file" in capsys.readouterr().err
    assert not (stack_env["home"] / "stack.json").exists()
