"""IAM execution roles for SageMaker endpoints and training jobs, least privilege.

Each role may read and write only its own bucket prefixes, pull only its own image, and
write only its own log groups. `ecr:GetAuthorizationToken` is the one action here that IAM
cannot scope to a resource.
"""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from scones.local.aws.images import ecr_repository_arn
from scones.local.deploy.stack import STACK_TAG
from scones.local.deploy.iam_policies import trust_policy

ECR_PULL_ACTIONS = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
LOG_ACTIONS = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]


def endpoint_role_name(stack_name: str) -> str:
    return f"{stack_name}-sagemaker-endpoint-role"


def training_role_name(stack_name: str) -> str:
    return f"{stack_name}-sagemaker-training-role"


def _image_pull_statements(image_uri: str) -> list[dict[str, Any]]:
    return [
        {"Sid": "PullServingImage", "Effect": "Allow", "Action": ECR_PULL_ACTIONS, "Resource": ecr_repository_arn(image_uri)},
        # GetAuthorizationToken has no resource-level permissions: "*" is the only valid resource.
        {"Sid": "EcrLogin", "Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"},
    ]


def endpoint_role_policy(
    *, bucket: str, model_prefix: str, capture_prefix: str, image_uri: str, region: str, account: str, endpoint_name: str
) -> dict[str, Any]:
    """Read the model artifacts, write data capture, pull the image, write the endpoint's logs."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ReadModels", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": f"arn:aws:s3:::{bucket}/{model_prefix}/*"},
            {"Sid": "WriteCapture", "Effect": "Allow", "Action": ["s3:PutObject"], "Resource": f"arn:aws:s3:::{bucket}/{capture_prefix}/*"},
            *_image_pull_statements(image_uri),
            {
                "Sid": "EndpointLogs",
                "Effect": "Allow",
                "Action": LOG_ACTIONS,
                "Resource": f"arn:aws:logs:{region}:{account}:log-group:/aws/sagemaker/Endpoints/{endpoint_name}:*",
            },
        ],
    }


def training_role_policy(
    *, bucket: str, read_prefixes: list[str], output_prefix: str, image_uri: str, region: str, account: str
) -> dict[str, Any]:
    """Read the data and source channels, write the model output, pull the image, write training logs."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ListChannels",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": f"arn:aws:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": [f"{p}/*" for p in read_prefixes]}},
            },
            {"Sid": "ReadChannels", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"arn:aws:s3:::{bucket}/{p}/*" for p in read_prefixes]},
            {"Sid": "WriteOutput", "Effect": "Allow", "Action": ["s3:PutObject"], "Resource": f"arn:aws:s3:::{bucket}/{output_prefix}/*"},
            *_image_pull_statements(image_uri),
            {
                "Sid": "TrainingLogs",
                "Effect": "Allow",
                "Action": LOG_ACTIONS,
                "Resource": f"arn:aws:logs:{region}:{account}:log-group:/aws/sagemaker/TrainingJobs:*",
            },
        ],
    }


def _as_dict(document: Any) -> dict[str, Any]:
    """IAM returns policy documents URL-encoded (real AWS) or already decoded (boto3 usually)."""
    return document if isinstance(document, dict) else json.loads(unquote(document))


def ensure_role(iam: Any, role_name: str, policy: dict[str, Any], stack_name: str) -> tuple[str, bool]:
    """Create or update a SageMaker execution role with one inline policy; (arn, changed)."""
    changed = False
    tags = [{"Key": STACK_TAG, "Value": stack_name}]
    try:
        arn = iam.get_role(RoleName=role_name)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        arn = iam.create_role(
            RoleName=role_name,
            AssumeRolePolicyDocument=json.dumps(trust_policy("sagemaker.amazonaws.com")),
            Description=f"SageMaker execution role of the {stack_name} stack",
            Tags=tags,
        )["Role"]["Arn"]
        changed = True
    try:
        current = _as_dict(iam.get_role_policy(RoleName=role_name, PolicyName=role_name)["PolicyDocument"])
    except iam.exceptions.NoSuchEntityException:
        current = None
    if current != policy:
        iam.put_role_policy(RoleName=role_name, PolicyName=role_name, PolicyDocument=json.dumps(policy))
        changed = True
    return arn, changed


def delete_role(iam: Any, role_name: str) -> bool:
    """Delete a role and its inline policies; False when it was already gone."""
    try:
        for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
            iam.delete_role_policy(RoleName=role_name, PolicyName=name)
        iam.delete_role(RoleName=role_name)
    except iam.exceptions.NoSuchEntityException:
        return False
    return True
