"""scripts/teardown.sh removes every resource promote.sh tagged, asks first, and re-runs safely."""
from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from fixtures.promote_fixtures import run_promote, run_script, write_fake_artifact

pytestmark = pytest.mark.slow
TAG = "scones:stack"


def _tagged_resources(session: boto3.Session, stack: str) -> list[str]:
    sm, iam, lam, sfn, s3 = (session.client(s) for s in ("sagemaker", "iam", "lambda", "stepfunctions", "s3"))
    mine = {"Key": TAG, "Value": stack}
    found = []
    for endpoint in sm.list_endpoints()["Endpoints"]:
        if mine in sm.list_tags(ResourceArn=endpoint["EndpointArn"])["Tags"]:
            found.append(endpoint["EndpointName"])
    for config in sm.list_endpoint_configs()["EndpointConfigs"]:
        if mine in sm.list_tags(ResourceArn=config["EndpointConfigArn"])["Tags"]:
            found.append(config["EndpointConfigName"])
    for model in sm.list_models()["Models"]:
        if mine in sm.list_tags(ResourceArn=model["ModelArn"])["Tags"]:
            found.append(model["ModelName"])
    for role in iam.list_roles()["Roles"]:
        if mine in iam.list_role_tags(RoleName=role["RoleName"])["Tags"]:
            found.append(role["RoleName"])
    for function in lam.list_functions()["Functions"]:
        if lam.list_tags(Resource=function["FunctionArn"])["Tags"].get(TAG) == stack:
            found.append(function["FunctionName"])
    for machine in sfn.list_state_machines()["stateMachines"]:
        tags = sfn.list_tags_for_resource(resourceArn=machine["stateMachineArn"])["tags"]
        if {"key": TAG, "value": stack} in tags:
            found.append(machine["name"])
    for bucket in s3.list_buckets()["Buckets"]:
        if bucket["Name"] == f"{stack}-bucket":
            found.append(bucket["Name"])
    return found


def test_teardown_removes_every_tagged_resource(moto_server: str, moto_session: boto3.Session, tmp_path: Path) -> None:
    stack = "tear1"
    model = write_fake_artifact(tmp_path / "model.tar.gz", ["bicycle", "motorcycle"])
    run_promote(moto_server, tmp_path, model, stack)
    before = _tagged_resources(moto_session, stack)
    assert len(before) >= 12  # endpoint, config, model, 6 roles, 4 functions, state machine, bucket

    declined = run_script("teardown.sh", "--stack-name", stack, moto_url=moto_server, home=tmp_path, stdin="n\n")
    assert declined.returncode != 0
    assert sorted(_tagged_resources(moto_session, stack)) == sorted(before)

    removed = run_script("teardown.sh", "--stack-name", stack, "--yes", moto_url=moto_server, home=tmp_path)
    assert removed.returncode == 0, removed.stderr
    assert _tagged_resources(moto_session, stack) == []
    assert f"endpoint {stack}-image-classifier" in removed.stdout

    again = run_script("teardown.sh", "--stack-name", stack, "--yes", moto_url=moto_server, home=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "nothing to delete" in again.stdout
