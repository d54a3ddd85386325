"""scripts/promote.sh end to end against a real moto server over HTTP."""
from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from fixtures.promote_fixtures import (  # noqa: F401  (fixtures used by name)
    is_write,
    moto_requests,
    moto_update_endpoint,
    operation_of,
    run_promote,
    run_script,
    write_fake_artifact,
)

pytestmark = pytest.mark.slow
CLASSES = ["bicycle", "motorcycle"]
FUNCTIONS = ("serialize-image", "classify-image", "filter-inferences", "record-outcome")
MUTATING = ("Create", "Update", "Delete", "PutRolePolicy", "PutObject", "PUT ", "POST ", "DELETE ")


def _promote(moto_server: str, home: Path, model: Path | str, stack: str, *extra: str):
    return run_promote(moto_server, home, model, stack, "--capture-percent", "50", *extra)


def _sagemaker_state(sm, endpoint: str) -> tuple[str, str]:
    described = sm.describe_endpoint(EndpointName=endpoint)
    config = sm.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    return config["ProductionVariants"][0]["ModelName"], described["EndpointConfigName"]


def test_promote_creates_the_whole_stack_and_reruns_idempotently(
    moto_server: str, moto_session: boto3.Session, moto_update_endpoint: None, tmp_path: Path, moto_requests
) -> None:
    stack = "prom1"
    model = write_fake_artifact(tmp_path / "model.tar.gz", CLASSES)
    first = _promote(moto_server, tmp_path, model, stack, "--instance-type", "ml.g4dn.2xlarge")
    sm = moto_session.client("sagemaker")
    endpoint = f"{stack}-image-classifier"

    described = sm.describe_endpoint(EndpointName=endpoint)
    assert described["EndpointStatus"] == "InService"
    model_name, config_name = _sagemaker_state(sm, endpoint)
    config = sm.describe_endpoint_config(EndpointConfigName=config_name)
    variant = config["ProductionVariants"][0]
    assert variant["InstanceType"] == "ml.g4dn.2xlarge"
    capture = config["DataCaptureConfig"]
    assert capture["EnableCapture"] is True
    assert capture["InitialSamplingPercentage"] == 50
    assert capture["DestinationS3Uri"] == f"s3://{stack}-bucket/capture"
    container = sm.describe_model(ModelName=model_name)["PrimaryContainer"]
    assert container["Image"] == "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.6.0-gpu-py312"
    assert container["ModelDataUrl"].startswith(f"s3://{stack}-bucket/models/")
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
    for arn in (described["EndpointArn"], config["EndpointConfigArn"], sm.describe_model(ModelName=model_name)["ModelArn"]):
        assert {"Key": "scones:stack", "Value": stack} in sm.list_tags(ResourceArn=arn)["Tags"]
    s3 = moto_session.client("s3")
    key = container["ModelDataUrl"].split("/", 3)[3]
    assert s3.get_object(Bucket=f"{stack}-bucket", Key=key)["Body"].read() == model.read_bytes()

    iam = moto_session.client("iam")
    role = iam.get_role(RoleName=f"{stack}-sagemaker-endpoint-role")["Role"]
    assert sm.describe_model(ModelName=model_name)["ExecutionRoleArn"] == role["Arn"]

    lam = moto_session.client("lambda")
    for function in FUNCTIONS:
        env = lam.get_function_configuration(FunctionName=f"{stack}-{function}")["Environment"]["Variables"]
        assert env["ENDPOINT_NAME"] == endpoint
        assert env["CLASS_NAMES"] == "bicycle,motorcycle"
        assert env["BUCKET"] == f"{stack}-bucket"
        assert float(env["THRESHOLD"]) == 0.93
        assert "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME" not in env

    sfn = moto_session.client("stepfunctions")
    machine_arn = f"arn:aws:states:us-east-1:123456789012:stateMachine:{stack}-workflow"
    definition = sfn.describe_state_machine(stateMachineArn=machine_arn)["definition"]
    assert "${" not in definition
    assert f"function:{stack}-classify-image" in definition
    assert machine_arn in first.stdout
    assert "scones classify" in first.stdout

    # Same model again: nothing is created, updated or deleted.
    before = {f: lam.get_function_configuration(FunctionName=f"{stack}-{f}")["LastModified"] for f in FUNCTIONS}
    recorded_before = len(moto_requests())
    _promote(moto_server, tmp_path, model, stack, "--instance-type", "ml.g4dn.2xlarge")
    rerun_ops = [operation_of(e) for e in moto_requests()[recorded_before:] if is_write(e)]
    # "?notification": plain moto 5.2 does not report the bucket's EventBridge switch, so the deploy sets it again
    mutating = [op for op in rerun_ops if op.startswith(MUTATING) and "tagging" not in op and "/tags/" not in op
                and not op.endswith("?notification")]
    assert mutating == []
    assert _sagemaker_state(sm, endpoint) == (model_name, config_name)
    assert {f: lam.get_function_configuration(FunctionName=f"{stack}-{f}")["LastModified"] for f in FUNCTIONS} == before

    # A new model: new Model + EndpointConfig, the endpoint shifts, the old ones are pruned.
    new_model = write_fake_artifact(tmp_path / "model-v2.tar.gz", CLASSES, salt="v2")
    third = _promote(moto_server, tmp_path, new_model, stack, "--instance-type", "ml.g4dn.2xlarge")
    new_model_name, new_config_name = _sagemaker_state(sm, endpoint)
    assert new_model_name != model_name and new_config_name != config_name
    assert "shifted endpoint" in third.stderr
    names = [m["ModelName"] for m in sm.list_models()["Models"] if m["ModelName"].startswith(f"{stack}-")]
    assert names == [new_model_name]
    assert {f: lam.get_function_configuration(FunctionName=f"{stack}-{f}")["LastModified"] for f in FUNCTIONS} == before


def test_promote_accepts_an_s3_model_uri(
    moto_server: str, moto_session: boto3.Session, tmp_path: Path
) -> None:
    stack = "prom2"
    s3 = moto_session.client("s3")
    s3.create_bucket(Bucket="prom2-artifacts")
    model = write_fake_artifact(tmp_path / "model.tar.gz", ["cat", "dog"])
    s3.upload_file(str(model), "prom2-artifacts", "jobs/x/output/model.tar.gz")
    _promote(moto_server, tmp_path, "s3://prom2-artifacts/jobs/x/output/model.tar.gz", stack)
    env = moto_session.client("lambda").get_function_configuration(FunctionName=f"{stack}-classify-image")
    assert env["Environment"]["Variables"]["CLASS_NAMES"] == "cat,dog"
    sm = moto_session.client("sagemaker")
    model_name, _ = _sagemaker_state(sm, f"{stack}-image-classifier")
    url = sm.describe_model(ModelName=model_name)["PrimaryContainer"]["ModelDataUrl"]
    assert url.startswith(f"s3://{stack}-bucket/models/")  # copied under the role's readable prefix


def test_dry_run_makes_no_write_call(moto_server: str, moto_session: boto3.Session, tmp_path: Path, moto_requests) -> None:
    stack = "promdry"
    model = write_fake_artifact(tmp_path / "model.tar.gz", CLASSES)
    result = run_script(
        "promote.sh", "--model", str(model), "--bucket", f"{stack}-bucket", "--stack-name", stack, "--dry-run",
        moto_url=moto_server, home=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "create endpoint" in result.stderr and "dry run" in result.stderr
    recorded = moto_requests()
    assert recorded, "the recorder saw no request at all: the check would be vacuous"
    assert [operation_of(e) for e in recorded if is_write(e)] == []
    names = [b["Name"] for b in moto_session.client("s3").list_buckets()["Buckets"]]
    assert f"{stack}-bucket" not in names


def test_missing_model_is_a_named_error(moto_server: str, tmp_path: Path) -> None:
    result = run_script("promote.sh", "--model", str(tmp_path / "nope.tar.gz"), "--bucket", "b", "--dry-run",
                        moto_url=moto_server, home=tmp_path)
    assert result.returncode != 0
    assert "ModelNotFound" in result.stderr


def test_moto_lacks_update_endpoint() -> None:
    """When moto implements UpdateEndpoint, drop the shim in fixtures/promote_fixtures.py."""
    from moto.sagemaker.responses import SageMakerResponse

    own = vars(SageMakerResponse).get("update_endpoint")
    assert own is None or getattr(SageMakerResponse, "scones_shim", False)
