"""Least-privilege IAM documents for the workflow: one role per function, one for the state machine.

No `*` action anywhere; resources are the stack's own bucket prefixes, endpoint, log groups and
functions. The only wildcards are inside resource ARNs (`bucket/*`, `log-group:NAME:*`), where
AWS has no narrower form.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

POLICY_VERSION = "2012-10-17"


@dataclass(frozen=True)
class AccountContext:
    partition: str  # "aws", "aws-cn", "aws-us-gov"
    region: str
    account: str


def trust_policy(service: str) -> dict:
    """Who may assume the role: lambda.amazonaws.com, states.amazonaws.com or events.amazonaws.com."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }


def log_group_arn(ctx: AccountContext, log_group: str) -> str:
    return f"arn:{ctx.partition}:logs:{ctx.region}:{ctx.account}:log-group:{log_group}"


def endpoint_arn(ctx: AccountContext, endpoint_name: str) -> str:
    # SageMaker reports endpoint ARNs with the name lower-cased.
    return f"arn:{ctx.partition}:sagemaker:{ctx.region}:{ctx.account}:endpoint/{endpoint_name.lower()}"


def _objects(ctx: AccountContext, bucket: str, prefix: str = "") -> str:
    return f"arn:{ctx.partition}:s3:::{bucket}/{prefix}*"


def _statement(sid: str, actions: list[str], resources: list[str]) -> dict:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}


def function_policy(
    function: str,
    ctx: AccountContext,
    *,
    log_group: str,
    bucket: str,
    endpoint_name: str,
    review_prefix: str = "review/",
    failed_prefix: str = "failed/",
) -> dict:
    """What one workflow function may do, and nothing more."""
    statements = [
        _statement("WriteOwnLogs", ["logs:CreateLogStream", "logs:PutLogEvents"],
                   [f"{log_group_arn(ctx, log_group)}:*"]),
    ]
    if function == "serialize_image":
        statements.append(_statement("ReadImages", ["s3:GetObject"], [_objects(ctx, bucket)]))
    elif function == "classify_image":
        statements.append(_statement("InvokeEndpoint", ["sagemaker:InvokeEndpoint"],
                                     [endpoint_arn(ctx, endpoint_name)]))
        statements.append(_statement("ReadLargeImages", ["s3:GetObject"], [_objects(ctx, bucket)]))
    elif function == "record_outcome":
        statements.append(_statement("WriteRecords", ["s3:PutObject"],
                                     [_objects(ctx, bucket, review_prefix), _objects(ctx, bucket, failed_prefix)]))
    elif function != "filter_inferences":
        raise ValueError(f"no policy for function {function!r}")
    return {"Version": POLICY_VERSION, "Statement": statements}


def state_machine_policy(function_arns: Iterable[str], ctx: AccountContext, *, bucket: str,
                         failed_prefix: str = "failed/") -> dict:  # fmt: skip
    """The state machine may invoke the workflow's functions, and write failed records itself (its
    fallback when the record_outcome function fails), nothing more."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [_statement("InvokeWorkflowFunctions", ["lambda:InvokeFunction"], sorted(function_arns)),
                      _statement("WriteFailedRecords", ["s3:PutObject"], [_objects(ctx, bucket, failed_prefix)])],
    }


def event_rule_policy(state_machine_arn: str) -> dict:
    """EventBridge may start executions of the workflow's state machine only."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [_statement("StartWorkflowExecutions", ["states:StartExecution"], [state_machine_arn])],
    }


def actions_of(policy: dict) -> list[str]:
    """Every action a policy document allows (for checks like "no `*` action")."""
    found: list[str] = []
    for statement in policy["Statement"]:
        action = statement["Action"]
        found += [action] if isinstance(action, str) else list(action)
    return found
