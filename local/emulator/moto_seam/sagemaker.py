"""The seam's SageMaker section: moto's endpoints handed to our control plane of real model servers.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol




class EndpointControlPlane(Protocol):
    """What runs endpoints for real: scones.local.emulator.sagemaker_endpoints.EndpointControlPlane."""

    def create(self, request: Any, report: Callable[[str, str | None, str | None], None]) -> None: ...

    def update(self, request: Any, report: Callable[[str, str | None, str | None], None]) -> None: ...

    def delete(self, endpoint_name: str) -> None: ...


def default_account_id() -> str:
    """The account moto answers for when credentials name none (AWS's error messages carry it)."""
    from moto.core import DEFAULT_ACCOUNT_ID

    return str(DEFAULT_ACCOUNT_ID)


def endpoint_request(backend: Any, endpoint_name: str, config_name: str) -> Any:
    """An EndpointRequest from moto's records: the config's variants with their models' primary containers."""
    from moto.sagemaker.exceptions import ValidationError

    from scones.local.emulator.sagemaker_endpoints import EndpointRequest, VariantSpec

    config = backend.describe_endpoint_config(config_name)  # ValidationException when missing, as AWS
    variants = []
    for variant in config["ProductionVariants"]:
        model = backend._models.get(variant["ModelName"])
        container = (model.primary_container or (model.containers or [{}])[0]) if model else {}
        if not container.get("ModelDataUrl"):
            raise ValidationError(message=f"Model {variant['ModelName']} has no ModelDataUrl to serve.")
        variants.append(VariantSpec(
            variant_name=variant["VariantName"], model_name=variant["ModelName"],
            model_data_url=container["ModelDataUrl"], image=container.get("Image", ""),
            environment={str(k): str(v) for k, v in (container.get("Environment") or {}).items()},
            weight=float(variant.get("InitialVariantWeight", 1.0)),
        ))  # fmt: skip
    return EndpointRequest(endpoint_name, backend.account_id, backend.region_name, config_name, tuple(variants),
                           dict(config.get("DataCaptureConfig") or {}))  # fmt: skip


def _status_reporter(backend: Any, endpoint: Any) -> Callable[[str, str | None, str | None], None]:
    """Writes the control plane's outcome into moto's FakeEndpoint (what DescribeEndpoint returns)."""
    from moto.core.utils import utcnow

    def report(status: str, failure_reason: str | None, applied_config: str | None) -> None:
        if applied_config is not None:
            config = backend.endpoint_configs[applied_config]
            endpoint.endpoint_config_name = applied_config
            endpoint.production_variants = endpoint._process_production_variants(config.production_variants)
            endpoint.data_capture_config = config.data_capture_config
        endpoint.endpoint_status, endpoint.failure_reason = status, failure_reason
        endpoint.last_modified_time = utcnow()

    return report


def install_sagemaker_control_plane(plane: EndpointControlPlane) -> Callable[[], None]:
    """CreateEndpoint / UpdateEndpoint / DeleteEndpoint drive `plane` (moto 5.2 only records them, and
    has no UpdateEndpoint); returns a function that restores moto's own."""
    from moto.core.responses import ActionResult
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.models import SageMakerModelBackend
    from moto.sagemaker.responses import SageMakerResponse

    originals = {name: SageMakerModelBackend.__dict__[name] for name in ("create_endpoint", "delete_endpoint")}

    def create_endpoint(self: Any, endpoint_name: str, endpoint_config_name: str, tags: Any) -> Any:
        if endpoint_name in self.endpoints:
            raise ValidationError(message=f'Cannot create already existing endpoint "{self.endpoints[endpoint_name].arn}".')
        request = endpoint_request(self, endpoint_name, endpoint_config_name)
        endpoint = originals["create_endpoint"](self, endpoint_name, endpoint_config_name, tags)
        endpoint.endpoint_status = "Creating"
        plane.create(request, _status_reporter(self, endpoint))
        return endpoint

    def update_endpoint(self: Any, endpoint_name: str, endpoint_config_name: str) -> Any:
        self.describe_endpoint(endpoint_name)  # ValidationException "Could not find endpoint" when missing
        endpoint = self.endpoints[endpoint_name]
        if endpoint.endpoint_status != "InService":
            raise ValidationError(message=f'Cannot update in-progress endpoint "{endpoint.arn}".')
        request = endpoint_request(self, endpoint_name, endpoint_config_name)
        endpoint.endpoint_status, endpoint.failure_reason = "Updating", None
        plane.update(request, _status_reporter(self, endpoint))
        return endpoint

    def delete_endpoint(self: Any, endpoint_name: str) -> None:
        originals["delete_endpoint"](self, endpoint_name)
        plane.delete(endpoint_name)

    def respond_update_endpoint(self: Any) -> Any:
        endpoint = self.sagemaker_backend.update_endpoint(
            self._get_param("EndpointName"), self._get_param("EndpointConfigName")
        )
        return ActionResult({"EndpointArn": endpoint.arn})

    SageMakerModelBackend.create_endpoint = create_endpoint  # type: ignore[method-assign]
    SageMakerModelBackend.delete_endpoint = delete_endpoint  # type: ignore[method-assign]
    SageMakerModelBackend.update_endpoint = update_endpoint  # type: ignore[attr-defined]
    SageMakerResponse.update_endpoint = respond_update_endpoint  # type: ignore[attr-defined]

    def uninstall() -> None:
        for name, original in originals.items():
            setattr(SageMakerModelBackend, name, original)
        for cls in (SageMakerModelBackend, SageMakerResponse):
            if "update_endpoint" in vars(cls):
                delattr(cls, "update_endpoint")

    return uninstall
