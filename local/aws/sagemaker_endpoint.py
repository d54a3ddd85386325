"""A SageMaker Model, EndpointConfig (with data capture) and Endpoint, created or updated.

Names carry a digest of what they describe, so a re-run with the same model finds every
resource already there and changes nothing, while a new model gets a new Model and
EndpointConfig and the endpoint shifts to them (SageMaker's blue/green update: the old
fleet serves until the new one is InService). Superseded configs and models are then pruned.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from scones.local.aws.waiter import wait_for_status
from scones.local.deploy.stack import STACK_TAG

DEFAULT_INSTANCE_TYPE = "ml.g4dn.xlarge"
VARIANT_NAME = "AllTraffic"


class EndpointFailed(RuntimeError):
    """The endpoint ended in Failed (or out of service) instead of InService."""


class EndpointTimeout(RuntimeError):
    """The endpoint did not reach InService in time."""


@dataclass(frozen=True)
class EndpointSpec:
    stack_name: str
    endpoint_name: str
    model_data_url: str  # s3://bucket/models/<sha>/model.tar.gz
    execution_role_arn: str
    image_uri: str
    region: str
    capture_s3_uri: str  # s3://bucket/capture
    capture_percent: int = 100
    instance_type: str = DEFAULT_INSTANCE_TYPE
    instance_count: int = 1
    extra_environment: dict[str, str] = field(default_factory=dict)

    @property
    def environment(self) -> dict[str, str]:
        """What the PyTorch inference toolkit reads to serve our code/inference.py."""
        return {
            "SAGEMAKER_PROGRAM": "inference.py",
            "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
            "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
            "SAGEMAKER_REGION": self.region,
            **self.extra_environment,
        }

    @property
    def tags(self) -> list[dict[str, str]]:
        return [{"Key": STACK_TAG, "Value": self.stack_name}]

    def container(self) -> dict[str, Any]:
        return {"Image": self.image_uri, "ModelDataUrl": self.model_data_url, "Environment": self.environment}

    def model_name(self) -> str:
        return _named(self.endpoint_name, {"container": self.container(), "role": self.execution_role_arn})

    def production_variants(self) -> list[dict[str, Any]]:
        return [
            {
                "VariantName": VARIANT_NAME,
                "ModelName": self.model_name(),
                "InstanceType": self.instance_type,
                "InitialInstanceCount": self.instance_count,
                "InitialVariantWeight": 1.0,
            }
        ]

    def data_capture_config(self) -> dict[str, Any]:
        """Model Monitor's capture: request and response, JSON output kept as JSON."""
        return {
            "EnableCapture": True,
            "InitialSamplingPercentage": self.capture_percent,
            "DestinationS3Uri": self.capture_s3_uri,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
        }

    def config_name(self) -> str:
        return _named(self.endpoint_name, {"variants": self.production_variants(), "capture": self.data_capture_config()})


@dataclass(frozen=True)
class EndpointDeployment:
    endpoint_name: str
    endpoint_arn: str
    model_name: str
    config_name: str
    changes: tuple[str, ...]  # what this run did, in order; empty when nothing changed


def _named(prefix: str, described: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:12]
    return f"{prefix[:50]}-{digest}"


def _missing(error: ClientError) -> bool:
    return "Could not find" in error.response.get("Error", {}).get("Message", "")


def _describe(call: Callable[..., dict[str, Any]], **kwargs: str) -> dict[str, Any] | None:
    try:
        return call(**kwargs)
    except ClientError as error:
        if _missing(error):
            return None
        raise


def plan_endpoint(sm: Any, spec: EndpointSpec) -> list[str]:
    """What deploy_endpoint would do, from read-only calls."""
    model, config = spec.model_name(), spec.config_name()
    plan = []
    if _describe(sm.describe_model, ModelName=model) is None:
        plan.append(f"create model {model} ({spec.image_uri}, {spec.model_data_url})")
    if _describe(sm.describe_endpoint_config, EndpointConfigName=config) is None:
        plan.append(
            f"create endpoint config {config} ({spec.instance_type} x{spec.instance_count}, "
            f"capture {spec.capture_percent}% to {spec.capture_s3_uri})"
        )
    endpoint = _describe(sm.describe_endpoint, EndpointName=spec.endpoint_name)
    if endpoint is None:
        plan.append(f"create endpoint {spec.endpoint_name} and wait for InService")
    elif endpoint["EndpointConfigName"] != config:
        plan.append(f"shift endpoint {spec.endpoint_name}: {endpoint['EndpointConfigName']} -> {config} (blue/green)")
    return plan


def deploy_endpoint(
    sm: Any,
    spec: EndpointSpec,
    *,
    on_status: Callable[[str], None] = lambda status: None,
    poll_s: float = 15.0,
    timeout_s: float = 3600.0,
) -> EndpointDeployment:
    """Create or update the endpoint to serve `spec`, wait for InService, prune what it superseded."""
    model, config = spec.model_name(), spec.config_name()
    changes: list[str] = []
    if _describe(sm.describe_model, ModelName=model) is None:
        sm.create_model(
            ModelName=model, ExecutionRoleArn=spec.execution_role_arn, PrimaryContainer=spec.container(), Tags=spec.tags
        )
        changes.append(f"created model {model}")
    if _describe(sm.describe_endpoint_config, EndpointConfigName=config) is None:
        sm.create_endpoint_config(
            EndpointConfigName=config,
            ProductionVariants=spec.production_variants(),
            DataCaptureConfig=spec.data_capture_config(),
            Tags=spec.tags,
        )
        changes.append(f"created endpoint config {config}")
    endpoint = _describe(sm.describe_endpoint, EndpointName=spec.endpoint_name)
    if endpoint is None:
        sm.create_endpoint(EndpointName=spec.endpoint_name, EndpointConfigName=config, Tags=spec.tags)
        changes.append(f"created endpoint {spec.endpoint_name}")
    elif endpoint["EndpointConfigName"] != config:
        if endpoint["EndpointStatus"] == "Failed":
            raise EndpointFailed(
                f"endpoint {spec.endpoint_name} is Failed ({endpoint.get('FailureReason', 'no reason given')}); "
                "run teardown, then promote again"
            )
        sm.update_endpoint(EndpointName=spec.endpoint_name, EndpointConfigName=config)
        changes.append(f"shifted endpoint {spec.endpoint_name} to {config}")
    endpoint = wait_in_service(sm, spec.endpoint_name, on_status=on_status, poll_s=poll_s, timeout_s=timeout_s)
    if endpoint["EndpointConfigName"] != config:  # a failed update leaves the old fleet serving
        raise EndpointFailed(
            f"endpoint {spec.endpoint_name} still serves {endpoint['EndpointConfigName']}, not {config}: "
            f"{endpoint.get('FailureReason', 'no reason given')}"
        )
    changes += prune_superseded(sm, spec.endpoint_name, spec.stack_name, keep_config=config, keep_model=model)
    return EndpointDeployment(spec.endpoint_name, endpoint["EndpointArn"], model, config, tuple(changes))


def wait_in_service(
    sm: Any, endpoint_name: str, *, on_status: Callable[[str], None], poll_s: float, timeout_s: float
) -> dict[str, Any]:
    """Poll DescribeEndpoint until InService; a real GPU endpoint takes 5-10 minutes."""
    return wait_for_status(
        lambda: sm.describe_endpoint(EndpointName=endpoint_name), status_key="EndpointStatus", done="InService",
        failed=("Failed", "OutOfService"), what=f"endpoint {endpoint_name}",
        on_status=lambda endpoint: on_status(endpoint["EndpointStatus"]), poll_s=poll_s, timeout_s=timeout_s,
        failed_error=EndpointFailed, timeout_error=EndpointTimeout,
    )  # fmt: skip


def _tagged(sm: Any, arn: str, stack_name: str) -> bool:
    tags = sm.list_tags(ResourceArn=arn).get("Tags", [])
    return {"Key": STACK_TAG, "Value": stack_name} in tags


def _stack_resources(sm: Any, operation: str, kind: str, endpoint_name: str, stack_name: str) -> list[str]:
    """Names of this stack's `kind`s ("Model", "EndpointConfig") named after the endpoint."""
    pages = sm.get_paginator(operation).paginate(NameContains=endpoint_name)
    resources = [r for page in pages for r in page[f"{kind}s"]]
    return [
        r[f"{kind}Name"]
        for r in resources
        if r[f"{kind}Name"].startswith(f"{endpoint_name}-") and _tagged(sm, r[f"{kind}Arn"], stack_name)
    ]


def stack_endpoint_configs(sm: Any, endpoint_name: str, stack_name: str) -> list[str]:
    return _stack_resources(sm, "list_endpoint_configs", "EndpointConfig", endpoint_name, stack_name)


def stack_models(sm: Any, endpoint_name: str, stack_name: str) -> list[str]:
    return _stack_resources(sm, "list_models", "Model", endpoint_name, stack_name)


def prune_superseded(sm: Any, endpoint_name: str, stack_name: str, *, keep_config: str, keep_model: str) -> list[str]:
    """Delete this stack's configs and models the endpoint no longer uses."""
    pruned = []
    for name in stack_endpoint_configs(sm, endpoint_name, stack_name):
        if name != keep_config:
            sm.delete_endpoint_config(EndpointConfigName=name)
            pruned.append(f"deleted superseded endpoint config {name}")
    for name in stack_models(sm, endpoint_name, stack_name):
        if name != keep_model:
            sm.delete_model(ModelName=name)
            pruned.append(f"deleted superseded model {name}")
    return pruned


def delete_endpoint_resources(sm: Any, endpoint_name: str, stack_name: str) -> list[str]:
    """Delete the endpoint, then every config and model of the stack; safe to re-run."""
    deleted = []
    endpoint = _describe(sm.describe_endpoint, EndpointName=endpoint_name)
    if endpoint is not None and _tagged(sm, endpoint["EndpointArn"], stack_name):
        sm.delete_endpoint(EndpointName=endpoint_name)
        deleted.append(f"endpoint {endpoint_name}")
    for name in stack_endpoint_configs(sm, endpoint_name, stack_name):
        sm.delete_endpoint_config(EndpointConfigName=name)
        deleted.append(f"endpoint config {name}")
    for name in stack_models(sm, endpoint_name, stack_name):
        sm.delete_model(ModelName=name)
        deleted.append(f"model {name}")
    return deleted
