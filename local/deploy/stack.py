"""The one deploy path: bucket, IAM roles, log groups, functions, the state machine and its S3 trigger.

Driven only by a boto3 Session and a StackConfig, so the same code deploys to moto (`scones up`),
LocalStack (compose) and AWS (`scripts/promote.sh`); AWS_ENDPOINT_URL picks the target.
Create-or-update: a second run updates function code/configuration and the definition in
place when they changed, and leaves everything else alone.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import boto3
from botocore.exceptions import ClientError

from scones.statemachine import load_definition, render

from scones.model.config import DEFAULT_THRESHOLD
from scones.local.deploy.iam_policies import (
    AccountContext,
    event_rule_policy,
    function_policy,
    state_machine_policy,
    trust_policy,
)
from scones.local.deploy.s3_trigger import delete_s3_trigger, ensure_s3_trigger
from scones.local.deploy.lambda_package import FUNCTIONS, build_function_zip, code_sha256, handler_string

STACK_TAG = "scones:stack"
LOG_RETENTION_DAYS = 30
REVIEW_PREFIX, FAILED_PREFIX = "review/", "failed/"
PLACEHOLDER_OF = {
    "serialize_image": "SerializeImageFunctionArn",
    "classify_image": "ClassifyImageFunctionArn",
    "filter_inferences": "FilterInferencesFunctionArn",
    "record_outcome": "RecordOutcomeFunctionArn",
}
# IAM is eventually consistent on AWS: a new role can take ~10 s before Lambda or Step
# Functions may assume it. Emulators accept it at once, so the first try costs nothing there.
IAM_PROPAGATION_TIMEOUT_S = 90

T = TypeVar("T")


class DeployError(RuntimeError):
    """A resource could not be created or updated; the message names it."""


@dataclass(frozen=True)
class StackConfig:
    stack_name: str
    bucket: str
    endpoint_name: str
    class_names: tuple[str, ...]
    threshold: float = DEFAULT_THRESHOLD
    lambda_environment: dict[str, str] = field(default_factory=dict)
    lambda_timeout_s: int = 30
    lambda_runtime: str = "python3.11"
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StackOutputs:
    bucket: str
    state_machine_arn: str
    function_arns: dict[str, str]  # keyed by function: serialize_image, classify_image, ...
    role_arns: dict[str, str]  # the same keys, plus "state_machine" and "events" (the S3 trigger's rule)


def function_name(stack_name: str, function: str) -> str:
    return f"{stack_name}-{function.replace('_', '-')}"


def role_name(stack_name: str, owner: str) -> str:
    return f"{stack_name}-{owner.replace('_', '-')}-role"


def state_machine_name(stack_name: str) -> str:
    return f"{stack_name}-workflow"


def log_group_name(stack_name: str, function: str) -> str:
    return f"/aws/lambda/{function_name(stack_name, function)}"


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _account_context(session: boto3.Session) -> AccountContext:
    arn = session.client("sts").get_caller_identity()["Arn"]
    _, partition, _, _, account, _ = arn.split(":", 5)
    return AccountContext(partition=partition, region=session.region_name or "us-east-1", account=account)


def _retry_while_role_propagates(call: Callable[[], T], what: str) -> T:
    deadline = time.monotonic() + IAM_PROPAGATION_TIMEOUT_S
    delay = 1.0
    while True:
        try:
            return call()
        except ClientError as error:
            message = str(error).lower()
            propagating = "cannot be assumed" in message or "not authorized to assume" in message
            if not propagating or time.monotonic() > deadline:
                raise DeployError(f"{what}: {error}") from error
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


def function_environment(config: StackConfig) -> dict[str, str]:
    return {
        "ENDPOINT_NAME": config.endpoint_name,
        "CLASS_NAMES": ",".join(config.class_names),
        "THRESHOLD": repr(float(config.threshold)),
        "BUCKET": config.bucket,
        "REVIEW_PREFIX": REVIEW_PREFIX,
        "FAILED_PREFIX": FAILED_PREFIX,
        **config.lambda_environment,
    }


def ensure_stack_bucket(session: boto3.Session, config: StackConfig) -> None:
    """The stack's bucket (deploy_stack makes sure of it too): what promotion needs before the model upload."""
    _ensure_bucket(session.client("s3"), config.bucket, session.region_name, {**config.tags, STACK_TAG: config.stack_name})


def _ensure_bucket(s3: Any, bucket: str, region: str, tags: dict[str, str]) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as error:
        if _code(error) not in ("404", "NoSuchBucket", "NotFound"):
            raise DeployError(f"bucket {bucket}: {error}") from error
        location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=bucket, **location)
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True,
            "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]})


def _ensure_role(iam: Any, name: str, service: str, policy: dict, tags: dict[str, str]) -> str:
    trust = trust_policy(service)
    try:
        arn = iam.get_role(RoleName=name)["Role"]["Arn"]
    except ClientError as error:
        if _code(error) != "NoSuchEntity":
            raise DeployError(f"role {name}: {error}") from error
        arn = iam.create_role(
            RoleName=name, AssumeRolePolicyDocument=json.dumps(trust),
            Description="Scones Unlimited workflow (least privilege)",
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )["Role"]["Arn"]
    try:
        current = iam.get_role_policy(RoleName=name, PolicyName=name)["PolicyDocument"]
    except ClientError:
        current = None
    if isinstance(current, str):
        current = json.loads(current)
    if current != policy:
        iam.put_role_policy(RoleName=name, PolicyName=name, PolicyDocument=json.dumps(policy))
    return arn


def _ensure_log_group(logs: Any, name: str, tags: dict[str, str]) -> None:
    existing = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    if any(group["logGroupName"] == name for group in existing):
        return
    logs.create_log_group(logGroupName=name, tags=tags)
    logs.put_retention_policy(logGroupName=name, retentionInDays=LOG_RETENTION_DAYS)


def _ensure_function(
    lam: Any, name: str, function: str, role_arn: str, config: StackConfig, tags: dict[str, str]
) -> str:
    zip_bytes = build_function_zip(function)
    settings = {
        "Role": role_arn,
        "Handler": handler_string(function),
        "Runtime": config.lambda_runtime,
        "Timeout": config.lambda_timeout_s,
        "MemorySize": 256,
        "Environment": {"Variables": function_environment(config)},
    }
    try:
        current = lam.get_function_configuration(FunctionName=name)
    except ClientError as error:
        if _code(error) != "ResourceNotFoundException":
            raise DeployError(f"function {name}: {error}") from error
        created = _retry_while_role_propagates(
            lambda: lam.create_function(FunctionName=name, Code={"ZipFile": zip_bytes},
                                        Description=f"Scones Unlimited {function}", Tags=tags, **settings),
            f"create function {name}",
        )
        lam.get_waiter("function_active_v2").wait(FunctionName=name)
        return created["FunctionArn"]
    if current.get("CodeSha256") != code_sha256(zip_bytes):
        lam.update_function_code(FunctionName=name, ZipFile=zip_bytes)
        lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    if _configuration_differs(current, settings):
        _retry_while_role_propagates(
            lambda: lam.update_function_configuration(FunctionName=name, **settings),
            f"update function {name}",
        )
        lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    lam.tag_resource(Resource=current["FunctionArn"], Tags=tags)
    return current["FunctionArn"]


def _configuration_differs(current: dict, wanted: dict) -> bool:
    current_env = current.get("Environment", {}).get("Variables", {})
    return current_env != wanted["Environment"]["Variables"] or any(
        current.get(key) != wanted[key] for key in ("Role", "Handler", "Runtime", "Timeout", "MemorySize")
    )


def _ensure_state_machine(sfn: Any, name: str, arn: str, definition: str, role_arn: str,
                          tags: dict[str, str]) -> str:
    try:
        current = sfn.describe_state_machine(stateMachineArn=arn)
    except ClientError as error:
        if _code(error) != "StateMachineDoesNotExist":
            raise DeployError(f"state machine {name}: {error}") from error
        return _retry_while_role_propagates(
            lambda: sfn.create_state_machine(
                name=name, definition=definition, roleArn=role_arn, type="STANDARD",
                tags=[{"key": k, "value": v} for k, v in tags.items()],
            )["stateMachineArn"],
            f"create state machine {name}",
        )
    if json.loads(current["definition"]) != json.loads(definition) or current["roleArn"] != role_arn:
        _retry_while_role_propagates(
            lambda: sfn.update_state_machine(stateMachineArn=arn, definition=definition, roleArn=role_arn),
            f"update state machine {name}",
        )
    sfn.tag_resource(resourceArn=arn, tags=[{"key": k, "value": v} for k, v in tags.items()])
    return arn


def definition_substitutions(function_arns: dict[str, str], bucket: str) -> dict[str, str]:
    """The definition's `${...}` values: each function's ARN, and where the state machine writes a failed
    record itself when the record_outcome function cannot."""
    return {**{PLACEHOLDER_OF[f]: arn for f, arn in function_arns.items()}, "RecordsBucket": bucket, "FailedPrefix": FAILED_PREFIX}


def _state_machine_arn(ctx: AccountContext, stack_name: str) -> str:
    return f"arn:{ctx.partition}:states:{ctx.region}:{ctx.account}:stateMachine:{state_machine_name(stack_name)}"


def deploy_stack(session: boto3.Session, config: StackConfig) -> StackOutputs:
    """Create or update every resource of the workflow; returns what a client needs to run it.

    The functions (each with its role and log group), the bucket and the S3 trigger's role do not
    depend on each other and are deployed side by side; the state machine names the functions."""
    ctx = _account_context(session)
    tags = {**config.tags, STACK_TAG: config.stack_name}
    # Clients are made here, in the caller's thread (a boto3 Session is not thread-safe; its clients are).
    iam, lam, logs, s3, sfn, events = (session.client(service) for service in ("iam", "lambda", "logs", "s3", "stepfunctions", "events"))
    arn = _state_machine_arn(ctx, config.stack_name)
    with ThreadPoolExecutor(max_workers=len(FUNCTIONS) + 2, thread_name_prefix="deploy") as pool:
        deployed = {function: pool.submit(_deploy_function, iam, lam, logs, function, ctx, config, tags) for function in FUNCTIONS}
        bucket = pool.submit(_ensure_bucket, s3, config.bucket, ctx.region, tags)
        events_role = pool.submit(_ensure_role, iam, role_name(config.stack_name, "events"), "events.amazonaws.com",
                                  event_rule_policy(arn), tags)  # fmt: skip
        role_arns = {function: future.result()[0] for function, future in deployed.items()}
        function_arns = {function: future.result()[1] for function, future in deployed.items()}
        bucket.result()
        role_arns["events"] = events_role.result()
    role_arns["state_machine"] = _ensure_role(
        iam, role_name(config.stack_name, "workflow"), "states.amazonaws.com",
        state_machine_policy(function_arns.values(), ctx, bucket=config.bucket, failed_prefix=FAILED_PREFIX), tags)
    definition = render(load_definition(), definition_substitutions(function_arns, config.bucket))
    arn = _ensure_state_machine(sfn, state_machine_name(config.stack_name), arn, definition, role_arns["state_machine"], tags)
    ensure_s3_trigger(s3, events, stack_name=config.stack_name,
                      bucket=config.bucket, state_machine_arn=arn, role_arn=role_arns["events"], tags=tags)
    return StackOutputs(bucket=config.bucket, state_machine_arn=arn,
                        function_arns=function_arns, role_arns=role_arns)


def _deploy_function(iam: Any, lam: Any, logs: Any, function: str, ctx: AccountContext, config: StackConfig,
                     tags: dict[str, str]) -> tuple[str, str]:  # fmt: skip
    """One function with its least-privilege role and log group: (role ARN, function ARN)."""
    name, log_group = function_name(config.stack_name, function), log_group_name(config.stack_name, function)
    policy = function_policy(function, ctx, log_group=log_group, bucket=config.bucket, endpoint_name=config.endpoint_name,
                             review_prefix=REVIEW_PREFIX, failed_prefix=FAILED_PREFIX)  # fmt: skip
    role_arn = _ensure_role(iam, role_name(config.stack_name, function), "lambda.amazonaws.com", policy, tags)
    _ensure_log_group(logs, log_group, tags)
    return role_arn, _ensure_function(lam, name, function, role_arn, config, tags)


def _ignore_missing(call: Callable[[], Any], *missing_codes: str) -> bool:
    """Run a delete; False when the thing was already gone."""
    try:
        call()
        return True
    except ClientError as error:
        if _code(error) in missing_codes:
            return False
        raise


def _delete_role(iam: Any, name: str) -> bool:
    try:
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            iam.delete_role_policy(RoleName=name, PolicyName=policy)
        for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
            iam.detach_role_policy(RoleName=name, PolicyArn=attached["PolicyArn"])
    except ClientError as error:
        if _code(error) == "NoSuchEntity":
            return False
        raise
    return _ignore_missing(lambda: iam.delete_role(RoleName=name), "NoSuchEntity")


def _stack_buckets(s3: Any, stack_name: str) -> list[str]:
    found = []
    for bucket in s3.list_buckets().get("Buckets", []):
        try:
            tag_set = s3.get_bucket_tagging(Bucket=bucket["Name"])["TagSet"]
        except ClientError:
            continue
        if {"Key": STACK_TAG, "Value": stack_name} in tag_set:
            found.append(bucket["Name"])
    return found


def _empty_and_delete_bucket(s3: Any, bucket: str) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    s3.delete_bucket(Bucket=bucket)


def destroy_stack(session: boto3.Session, stack_name: str, *, keep_bucket: bool = False) -> list[str]:
    """Delete what deploy_stack made for this stack name; returns what it deleted. Safe to re-run.

    The bucket (found by its scones:stack tag) is emptied and deleted unless keep_bucket.
    """
    ctx = _account_context(session)
    iam, lam, logs, sfn = (session.client(s) for s in ("iam", "lambda", "logs", "stepfunctions"))
    deleted: list[str] = []
    if delete_s3_trigger(session.client("events"), stack_name):
        deleted.append(f"event rule {stack_name}-incoming")
    arn = _state_machine_arn(ctx, stack_name)
    if _ignore_missing(lambda: sfn.describe_state_machine(stateMachineArn=arn), "StateMachineDoesNotExist"):
        sfn.delete_state_machine(stateMachineArn=arn)
        deleted.append(f"state machine {arn}")
    for function in FUNCTIONS:
        name = function_name(stack_name, function)
        if _ignore_missing(lambda: lam.delete_function(FunctionName=name), "ResourceNotFoundException"):
            deleted.append(f"function {name}")
        group = log_group_name(stack_name, function)
        if _ignore_missing(lambda: logs.delete_log_group(logGroupName=group), "ResourceNotFoundException"):
            deleted.append(f"log group {group}")
    for owner in (*FUNCTIONS, "workflow", "events"):
        if _delete_role(iam, role_name(stack_name, owner)):
            deleted.append(f"role {role_name(stack_name, owner)}")
    if not keep_bucket:
        s3 = session.client("s3")
        for bucket in _stack_buckets(s3, stack_name):
            _empty_and_delete_bucket(s3, bucket)
            deleted.append(f"bucket {bucket}")
    return deleted
