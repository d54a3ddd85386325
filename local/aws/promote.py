"""`scones promote` / `scones teardown`: one model.tar.gz to a working workflow on AWS, and back.

The workflow (bucket, Lambda roles, functions, state machine) goes through the same
`deploy_stack` as `scones up`; this module adds what only AWS runs: the model in S3, the
SageMaker execution role, Model, EndpointConfig with data capture, and the endpoint.
AWS_ENDPOINT_URL retargets every call, which is how the tests run it against moto.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click
from botocore.exceptions import ClientError

from scones.local.aws.images import pytorch_image_uri
from scones.model.artifact import InvalidArtifact, artifact_class_names
from scones.model.config import DEFAULT_THRESHOLD, load_settings, parse_s3_uri
from scones.local.deploy.stack import (
    StackConfig,
    deploy_stack,
    destroy_stack,
    ensure_stack_bucket,
    function_name,
    state_machine_name,
)
from scones.local.deploy.lambda_package import FUNCTIONS
from scones.local.aws.sagemaker_endpoint import (
    DEFAULT_INSTANCE_TYPE,
    EndpointSpec,
    delete_endpoint_resources,
    deploy_endpoint,
    plan_endpoint,
)
from scones.local.aws.sagemaker_roles import delete_role, endpoint_role_name, endpoint_role_policy, ensure_role, training_role_name

MODEL_PREFIX, CAPTURE_PREFIX = "models", "capture"


class ModelNotFound(FileNotFoundError):
    """--model names neither a readable local file nor an existing S3 object."""


class InvalidModelArtifact(ValueError):
    """The model.tar.gz lacks model.json or code/inference.py (contract A)."""


@dataclass(frozen=True)
class PromoteRequest:
    model: str  # local path or s3://bucket/key of a model.tar.gz
    bucket: str
    stack_name: str
    endpoint_name: str
    instance_type: str = DEFAULT_INSTANCE_TYPE
    capture_percent: int = 100
    image: str | None = None  # default: the AWS PyTorch inference image for the region
    threshold: float = DEFAULT_THRESHOLD


@dataclass(frozen=True)
class LocalModel:
    path: Path
    sha256: str
    class_names: tuple[str, ...]

    def key(self) -> str:
        return f"{MODEL_PREFIX}/{self.sha256[:16]}/model.tar.gz"


@dataclass(frozen=True)
class PromotionResult:
    state_machine_arn: str
    endpoint_name: str
    model_data_url: str
    class_names: tuple[str, ...]
    changes: tuple[str, ...]


def _account(session: Any) -> str:
    return session.client("sts").get_caller_identity()["Account"]


@contextmanager
def fetched_model(s3: Any, model: str) -> Iterator[LocalModel]:
    """The model as a local file (downloading s3:// URIs), with its digest and class names."""
    with tempfile.TemporaryDirectory(prefix="scones-promote-") as tmp:
        if model.startswith("s3://"):
            bucket, key = parse_s3_uri(model)
            path = Path(tmp) / "model.tar.gz"
            try:
                s3.download_file(bucket, key, str(path))
            except ClientError as error:
                raise ModelNotFound(f"no object {model}: {error.response['Error'].get('Code')}") from error
        else:
            path = Path(model)
            if not path.is_file():
                raise ModelNotFound(f"no model file {model}")
        digest = hashlib.sha256()
        with path.open("rb") as file:
            for chunk in iter(lambda: file.read(1 << 20), b""):
                digest.update(chunk)
        try:
            class_names = artifact_class_names(path, require_code=True)
        except InvalidArtifact as error:
            raise InvalidModelArtifact(str(error)) from error
        yield LocalModel(path, digest.hexdigest(), class_names)


def _object_exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as error:
        if error.response["Error"].get("Code") in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
            return False
        raise


def stack_config(request: PromoteRequest, class_names: tuple[str, ...]) -> StackConfig:
    return StackConfig(
        stack_name=request.stack_name, bucket=request.bucket, endpoint_name=request.endpoint_name,
        class_names=class_names, threshold=request.threshold,
    )


def endpoint_spec(request: PromoteRequest, region: str, role_arn: str, model_key: str) -> EndpointSpec:
    return EndpointSpec(
        stack_name=request.stack_name, endpoint_name=request.endpoint_name,
        model_data_url=f"s3://{request.bucket}/{model_key}", execution_role_arn=role_arn,
        image_uri=request.image or pytorch_image_uri(region, "inference", request.instance_type),
        region=region, capture_s3_uri=f"s3://{request.bucket}/{CAPTURE_PREFIX}",
        capture_percent=request.capture_percent, instance_type=request.instance_type,
    )


def _role_arn(account: str, role_name: str) -> str:
    return f"arn:aws:iam::{account}:role/{role_name}"


def plan_promotion(session: Any, request: PromoteRequest) -> list[str]:
    """What promote_stack would do, from read-only calls (Head/Get/Describe) only."""
    s3, lam, sfn = session.client("s3"), session.client("lambda"), session.client("stepfunctions")
    account, region = _account(session), session.region_name
    with fetched_model(s3, request.model) as model:
        plan = [f"model {request.model} (sha256 {model.sha256[:16]}, classes {', '.join(model.class_names)})"]
        if not _object_exists(s3, request.bucket, model.key()):
            plan.append(f"upload s3://{request.bucket}/{model.key()}")
    for function in FUNCTIONS:
        name = function_name(request.stack_name, function)
        try:
            lam.get_function_configuration(FunctionName=name)
            plan.append(f"deploy_stack: update function {name} if its code or configuration changed")
        except lam.exceptions.ResourceNotFoundException:
            plan.append(f"deploy_stack: create function {name} and its least-privilege role")
    machine = f"arn:aws:states:{region}:{account}:stateMachine:{state_machine_name(request.stack_name)}"
    try:
        sfn.describe_state_machine(stateMachineArn=machine)
        plan.append(f"deploy_stack: update state machine {machine} if its definition changed")
    except sfn.exceptions.StateMachineDoesNotExist:
        plan.append(f"deploy_stack: create bucket {request.bucket} (if absent) and state machine {machine}")
    role = endpoint_role_name(request.stack_name)
    plan.append(f"create or update SageMaker execution role {role}")
    spec = endpoint_spec(request, region, _role_arn(account, role), model.key())
    plan += plan_endpoint(session.client("sagemaker"), spec) or [f"endpoint {request.endpoint_name}: no change"]
    return plan


def promote_stack(
    session: Any, request: PromoteRequest, *, on_status: Callable[[str], None] = lambda s: None, poll_s: float = 15.0
) -> PromotionResult:
    """Model to S3, then the endpoint (role, Model/EndpointConfig/Endpoint) and the workflow (deploy_stack)
    side by side: the endpoint's instance starting is the long wait, and neither needs the other."""
    s3, iam, sm = session.client("s3"), session.client("iam"), session.client("sagemaker")
    account, region = _account(session), session.region_name
    changes: list[str] = []
    with fetched_model(s3, request.model) as model:
        config = stack_config(request, model.class_names)
        ensure_stack_bucket(session, config)
        if not _object_exists(s3, request.bucket, model.key()):
            s3.upload_file(str(model.path), request.bucket, model.key())
            changes.append(f"uploaded s3://{request.bucket}/{model.key()}")
    spec = endpoint_spec(request, region, "", model.key())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="promote-endpoint") as pool:
        endpoint = pool.submit(_promote_endpoint, iam, sm, request, spec, account, on_status, poll_s)
        outputs = deploy_stack(session, config)  # its clients are made here: a boto3 Session is not thread-safe
        changes += endpoint.result()
    return PromotionResult(
        outputs.state_machine_arn, request.endpoint_name, spec.model_data_url, model.class_names, tuple(changes)
    )


def _promote_endpoint(iam: Any, sm: Any, request: PromoteRequest, spec: EndpointSpec, account: str,
                      on_status: Callable[[str], None], poll_s: float) -> list[str]:
    """The endpoint's execution role, then the endpoint serving `spec` (InService); the changes made."""
    policy = endpoint_role_policy(
        bucket=request.bucket, model_prefix=MODEL_PREFIX, capture_prefix=CAPTURE_PREFIX, image_uri=spec.image_uri,
        region=spec.region, account=account, endpoint_name=request.endpoint_name,
    )
    role_arn, role_changed = ensure_role(iam, endpoint_role_name(request.stack_name), policy, request.stack_name)
    changes = [f"created or updated role {endpoint_role_name(request.stack_name)}"] if role_changed else []
    deployment = deploy_endpoint(sm, replace(spec, execution_role_arn=role_arn), on_status=on_status, poll_s=poll_s)
    return changes + list(deployment.changes)


def save_aws_state(session: Any, request: PromoteRequest, result: PromotionResult) -> Path | None:
    """Record the AWS stack in the state file, so `scones classify` and `scones monitor` find it."""
    from scones.local.stacks.state import new_state, save_state

    settings = load_settings()
    state = new_state(
        settings, "aws", class_names=result.class_names, aws_endpoint_url=os.environ.get("AWS_ENDPOINT_URL"),
        model_server_url=None, state_machine_arn=result.state_machine_arn, region=session.region_name,
        endpoint_name=request.endpoint_name, bucket=request.bucket, stack_name=request.stack_name,
        threshold=request.threshold,
    )
    save_state(settings, state)
    return settings.state_file


def teardown_stack(session: Any, stack_name: str, endpoint_name: str, *, keep_bucket: bool = False) -> list[str]:
    """Endpoint, configs and models first (they bill), then the roles, then deploy_stack's resources."""
    deleted = delete_endpoint_resources(session.client("sagemaker"), endpoint_name, stack_name)
    iam = session.client("iam")
    for role in (endpoint_role_name(stack_name), training_role_name(stack_name)):
        if delete_role(iam, role):
            deleted.append(f"role {role}")
    return deleted + destroy_stack(session, stack_name, keep_bucket=keep_bucket)


def _defaults(stack_name: str | None) -> Any:
    env = dict(os.environ)
    if stack_name:
        env["SCONES_STACK"] = stack_name
    return load_settings(env)


@click.command()
@click.option("--model", required=True, help="model.tar.gz: a local path or an s3:// URI.")
@click.option("--bucket", default=None, help="Bucket for images, models, capture and records [default: STACK-images].")
@click.option("--region", default=None, help="AWS region [default: AWS_REGION, else us-east-1].")
@click.option("--stack-name", default=None, help="Prefix of every resource name and the scones:stack tag [default: scones].")
@click.option("--endpoint-name", default=None, help="SageMaker endpoint [default: STACK-image-classifier].")
@click.option("--instance-type", default=DEFAULT_INSTANCE_TYPE, show_default=True, help="Endpoint instance (GPU by default; ml.m5.large for CPU).")
@click.option("--capture-percent", default=100, show_default=True, type=click.IntRange(0, 100), help="Data capture sampling percentage.")
@click.option("--image", default=None, help="Serving image [default: AWS PyTorch inference image]; or our server image pushed to ECR.")
@click.option("--threshold", default=None, type=float, help="Filter confidence threshold [default: SCONES_THRESHOLD or 0.93].")
@click.option("--poll", "poll_s", default=15.0, show_default=True, help="Seconds between endpoint status checks.")
@click.option("--dry-run", is_flag=True, help="Print the plan; make no change (read-only calls only).")
@click.option("--yes", is_flag=True, help="Do not ask before creating billable resources.")
def promote(model: str, bucket: str | None, region: str | None, stack_name: str | None, endpoint_name: str | None,
            instance_type: str, capture_percent: int, image: str | None, threshold: float | None, poll_s: float,
            dry_run: bool, yes: bool) -> None:
    """Deploy MODEL and the workflow to AWS (or wherever AWS_ENDPOINT_URL points).

    Uploads the model to s3://BUCKET/models/<sha256>/, deploys the bucket, Lambdas and state
    machine with the same code as `scones up`, then a SageMaker Model, an EndpointConfig with
    data capture to s3://BUCKET/capture and an endpoint, waiting until InService. Re-running
    with the same model changes nothing; a new model shifts the endpoint to a new config.
    A GPU endpoint bills by the hour until `scones teardown`.
    """
    import boto3
    from rich.console import Console

    console = Console(stderr=True)
    settings = _defaults(stack_name)
    session = boto3.Session(region_name=region or settings.region)
    request = PromoteRequest(
        model=model, bucket=bucket or settings.bucket, stack_name=settings.stack_name,
        endpoint_name=endpoint_name or settings.endpoint_name, instance_type=instance_type,
        capture_percent=capture_percent, image=image, threshold=settings.threshold if threshold is None else threshold,
    )
    plan = plan_promotion(session, request)
    console.print(f"[bold]plan for stack {request.stack_name} in {session.region_name}:[/]")
    for line in plan:
        console.print(f"  - {line}")
    if dry_run:
        console.print("dry run: nothing changed")
        return
    if not yes:
        click.confirm(f"Create or update these resources (endpoint on {instance_type}, billed hourly)?", abort=True)
    with console.status("promoting") as status:
        result = promote_stack(session, request, poll_s=poll_s,
                               on_status=lambda s: status.update(f"endpoint {request.endpoint_name}: {s}"))
    for change in result.changes or ("no change",):
        console.print(f"  * {change}")
    state_file = save_aws_state(session, request, result)
    if state_file:
        console.print(f"state file: {state_file}")
    click.echo(f"state machine: {result.state_machine_arn}")
    click.echo(f"endpoint:      {result.endpoint_name}")
    click.echo("classify an image:")
    click.echo(f"  AWS_REGION={session.region_name} scones classify path/to/bicycle.png")
    click.echo("or, with the AWS CLI:")
    click.echo(f"  aws stepfunctions start-execution --state-machine-arn {result.state_machine_arn} "
               f"--input '{{\"s3_bucket\": \"{request.bucket}\", \"s3_key\": \"test/bicycle_s_000513.png\"}}'")


@click.command()
@click.option("--stack-name", default=None, help="The stack to delete [default: SCONES_STACK or scones].")
@click.option("--endpoint-name", default=None, help="[default: STACK-image-classifier]")
@click.option("--region", default=None, help="AWS region [default: AWS_REGION, else us-east-1].")
@click.option("--keep-bucket", is_flag=True, help="Keep the bucket and its objects (models, capture, records).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def teardown(stack_name: str | None, endpoint_name: str | None, region: str | None, keep_bucket: bool, yes: bool) -> None:
    """Delete everything `promote` created for the stack (found by name and scones:stack tag).

    The endpoint, its configs and models, the SageMaker roles, the functions, their roles and
    log groups, the state machine and (unless --keep-bucket) the bucket with its contents.
    Safe to re-run: what is already gone is skipped.
    """
    import boto3

    settings = _defaults(stack_name)
    session = boto3.Session(region_name=region or settings.region)
    if not yes:
        click.confirm(f"Delete every resource of stack {settings.stack_name} in {session.region_name}?", abort=True)
    deleted = teardown_stack(session, settings.stack_name, endpoint_name or settings.endpoint_name, keep_bucket=keep_bucket)
    for item in deleted:
        click.echo(f"deleted {item}")
    if not deleted:
        click.echo(f"nothing to delete for stack {settings.stack_name}")
    if settings.state_file.is_file():
        state = json.loads(settings.state_file.read_text())
        if state.get("target") == "aws" and state.get("stack_name") == settings.stack_name:
            settings.state_file.unlink()


if __name__ == "__main__":
    click.Group(commands=[promote, teardown], help="Promote to AWS, or tear down.")()
