"""Every touch of moto's internals, in one place; tests/unit/test_moto_seam.py fails loudly if moto moves one.

What we rely on, and why:
- `moto.awslambda.models.LambdaFunction._invoke_lambda(event) -> (payload, errored, logs)`: moto 5.2
  runs Lambda code only in Docker through it. `invoke` turns `errored` into X-Amz-Function-Error
  and Step Functions reads the payload's `errorType` as the error name Catch/Retry match;
  `install_lambda_invoker` puts our runner there.
- `moto.moto_api._internal.moto_api_backend.set_config`: the in-process form of the public
  `POST /moto-api/config`, to let Step Functions execute definitions.
- `moto.moto_server.werkzeug_app` (`DomainDispatcherApplication`, `create_backend_app`,
  `MotoRequestHandler`): what `ThreadedMotoServer` serves, built here so that the host process can
  install the runner before it serves.
- `moto.settings.moto_server_port()` reads MOTO_PORT: the Step Functions interpreter calls Lambda at
  `localhost:$MOTO_PORT`.
- `moto.sagemaker.models.SageMakerModelBackend` (`create_endpoint`, `delete_endpoint`, `endpoints`,
  `endpoint_configs`, `_models`, `describe_endpoint_config`) and `FakeEndpoint` (`endpoint_status`,
  `failure_reason`, `endpoint_config_name`, `production_variants`, `data_capture_config`,
  `_process_production_variants`): moto only records endpoints (always InService, no server);
  `install_sagemaker_control_plane` hands them to our control plane, which runs real model servers
  and writes the status back. moto 5.2 has no UpdateEndpoint: the same function adds it to the
  backend and to `moto.sagemaker.responses.SageMakerResponse`.
- `moto.core.DEFAULT_ACCOUNT_ID`: the account in AWS's "Endpoint X of account Y not found.".
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any, Protocol

from scones.local.emulator.lambda_spec import FunctionSpec, InvocationResult, LogSink

STEP_FUNCTIONS_EXECUTE = {"stepfunctions": {"execute_state_machine": True}}


class LambdaInvoker(Protocol):
    """What replaces moto's Docker invocation: the process runner, or a test's in-process one."""

    def invoke(
        self, spec: FunctionSpec, code_zip: Callable[[], bytes], event: Any, log_sink: LogSink | None = None
    ) -> InvocationResult: ...


# --- Lambda: LambdaFunction._invoke_lambda -------------------------------------------------------

_installed: LambdaInvoker | None = None


def function_spec(function: Any) -> FunctionSpec:
    """A FunctionSpec from moto's LambdaFunction (the attributes the seam test pins)."""
    return FunctionSpec(
        name=function.function_name,
        arn=function.function_arn,
        handler=function.handler,
        runtime=function.run_time or "python3.11",
        version=str(function.version),
        timeout_s=float(function.timeout),
        memory_mb=int(function.memory_size),
        region=function.region,
        code_sha256=function.code_sha_256 or "",
        environment=dict(function.environment_vars or {}),
    )


def _moto_log_sink(function: Any) -> LogSink:
    def write(spec: FunctionSpec, stream: str, lines: list[str]) -> None:
        backend = function.logs_backend
        backend.ensure_log_group(spec.log_group)
        backend.ensure_log_stream(spec.log_group, stream)
        now = int(time.time() * 1000)
        backend.put_log_events(spec.log_group, stream, [{"timestamp": now, "message": line} for line in lines])

    return write


def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
    """Replacement for LambdaFunction._invoke_lambda: (payload JSON, function error?, logs)."""
    if _installed is None:
        raise RuntimeError("scones.local.emulator.moto_seam: no Lambda invoker installed")
    if isinstance(event, str | bytes):
        event = json.loads(event or "{}")  # moto passes the text "{}" for an empty payload
    result = _installed.invoke(
        function_spec(self), lambda: self.code_bytes, {} if event is None else event, log_sink=_moto_log_sink(self)
    )
    return result.payload, result.errored, result.logs


def install_lambda_invoker(invoker: LambdaInvoker) -> Callable[[], None]:
    """Put `invoker` behind moto's Lambda invoke; returns a function that restores moto's own."""
    global _installed
    from moto.awslambda.models import LambdaFunction

    original = LambdaFunction.__dict__["_invoke_lambda"]
    _installed = invoker
    LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign]

    def uninstall() -> None:
        global _installed
        LambdaFunction._invoke_lambda = original  # type: ignore[method-assign]
        _installed = None

    return uninstall


# --- Step Functions ----------------------------------------------------------------------------


def enable_state_machine_execution() -> None:
    """Step Functions runs definitions (moto's default only records executions)."""
    from moto.moto_api._internal import moto_api_backend

    moto_api_backend.set_config(STEP_FUNCTIONS_EXECUTE)


# --- the server process ------------------------------------------------------------------------


def make_server(host: str, port: int) -> Any:
    """moto's WSGI app on a threaded werkzeug server (as ThreadedMotoServer builds it), not yet serving.

    MOTO_PORT is set to the bound port: moto's Step Functions calls Lambda at localhost:$MOTO_PORT.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server as make_werkzeug_server

    app = DomainDispatcherApplication(create_backend_app)
    server = make_werkzeug_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    os.environ["MOTO_PORT"] = str(server.server_port)
    return server


# --- SageMaker ---------------------------------------------------------------------------------


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
