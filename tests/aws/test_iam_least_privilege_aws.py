"""Every IAM policy a promoted stack holds: no `*` action, no `*` resource where IAM has a narrower one."""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote

import boto3
import pytest
from fixtures.promote_fixtures import run_promote, write_fake_artifact

from scones.local.aws.sagemaker_roles import ensure_role, training_role_name, training_role_policy

pytestmark = pytest.mark.slow
# Actions IAM cannot scope to a resource: "*" is the only valid resource for them.
UNSCOPABLE = {"ecr:GetAuthorizationToken"}


def _listify(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _problems(role: str, document: dict) -> list[str]:
    problems = []
    for statement in document["Statement"]:
        actions, resources = _listify(statement["Action"]), _listify(statement.get("Resource", []))
        for action in actions:
            if action == "*" or action.endswith(":*"):
                problems.append(f"{role}: wildcard action {action}")
        if "*" in resources and not set(actions) <= UNSCOPABLE:
            problems.append(f"{role}: resource * for {actions}")
        for resource in resources:
            parts = resource.split(":", 5)
            if resource != "*" and (len(parts) < 6 or parts[5] in ("*", "")):
                problems.append(f"{role}: whole-service resource {resource}")
    return problems


def test_every_stack_policy_is_least_privilege(moto_server: str, moto_session: boto3.Session, tmp_path: Path) -> None:
    stack = "iam1"
    model = write_fake_artifact(tmp_path / "model.tar.gz", ["bicycle", "motorcycle"])
    run_promote(moto_server, tmp_path, model, stack)
    iam = moto_session.client("iam")
    ensure_role(iam, training_role_name(stack), training_role_policy(
        bucket=f"{stack}-bucket", read_prefixes=["data", "code"], output_prefix="training",
        image_uri="763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.6.0-gpu-py312",
        region="us-east-1", account="123456789012"), stack)

    roles = [r["RoleName"] for r in iam.list_roles()["Roles"]
             if {"Key": "scones:stack", "Value": stack} in iam.list_role_tags(RoleName=r["RoleName"])["Tags"]]
    assert len(roles) == 8  # 4 functions, state machine, S3 trigger (EventBridge), endpoint, training
    problems, checked = [], 0
    for role in roles:
        assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
            document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
            document = document if isinstance(document, dict) else json.loads(unquote(document))
            problems += _problems(role, document)
            checked += 1
    assert checked == len(roles)
    assert problems == []


def test_the_check_catches_a_broad_policy() -> None:
    broad = {"Statement": [{"Action": "s3:*", "Resource": "*"}, {"Action": ["logs:PutLogEvents"], "Resource": "arn:aws:logs:*"}]}
    assert len(_problems("r", broad)) == 3
