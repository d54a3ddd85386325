"""Every touch of moto's internals, in one place; tests/unit/test_moto_seam.py fails loudly if moto moves one.

What we rely on, and why:
- `moto.awslambda.models.LambdaFunction._invoke_lambda(event) -> (payload, errored, logs)`: moto 5.2
  runs Lambda code only in Docker through it. `invoke` turns `errored` into X-Amz-Function-Error
  and Step Functions reads the payload's `errorType` as the error name Catch/Retry match;
  `install_lambda_invoker` puts our runner there.
- `moto.awslambda.models.LambdaFunction.invoke(body, request_headers, response_headers)`: moto
  json-decodes the payload itself (invalid JSON → HTTP 500, `null` → `{}`, a JSON string → 500)
  and marks function errors "Handled"; our replacement follows AWS: any JSON value reaches the
  handler, invalid JSON is InvalidRequestContentException (400), throttles are
  TooManyRequestsException (429), function errors are "Unhandled" (what AWS reports for Python).
- `moto.moto_api._internal.moto_api_backend.set_config`: the in-process form of the public
  `POST /moto-api/config`, to let Step Functions execute definitions.
- `moto.moto_server.werkzeug_app` (`DomainDispatcherApplication`, `create_backend_app`,
  `MotoRequestHandler`): what `ThreadedMotoServer` serves, built here so that the host process can
  install the runner before it serves.
- `moto.settings.moto_server_port()` reads MOTO_PORT: the Step Functions interpreter calls Lambda at
  `localhost:$MOTO_PORT`.
- Step Functions: `moto_seam_stepfunctions.py` (this seam's Step Functions section, its own module
  for size), installed by `install_step_functions`; its docstring lists each internal.
- S3 → EventBridge → Step Functions: `moto.s3.notifications._send_event_bridge_message` /
  `_detail_type` (S3 events in AWS's shape), `S3Response.get_bucket_notification` (reports
  EventBridgeConfiguration), `moto.events.models.Rule.send_to_targets` (`states` targets start
  executions, the InputTransformer applied).
- `moto.sagemaker.responses.SageMakerResponse`: moto 5.2 has no UpdateEndpoint; `add_update_endpoint`
  adds it.
"""
from __future__ import annotations

import base64
import copy
import json
import os
import re
import time
from collections.abc import Callable
from typing import Any, Protocol

from scones.local.emulator import event_targets
from scones.local.emulator.lambda_spec import FunctionSpec, InvocationResult, LogSink

STEP_FUNCTIONS_EXECUTE = {"stepfunctions": {"execute_state_machine": True}}


class LambdaInvoker(Protocol):
    """What replaces moto's Docker invocation: the process runner, or a test's in-process one."""

    def invoke(
        self,
        spec: FunctionSpec,
        code_zip: Callable[[], bytes],
        event: Any,
        log_sink: LogSink | None = None,
        layer_zip: Callable[[str], bytes] | None = None,
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
        ephemeral_storage_mb=int(function.ephemeral_storage or 512),
        layers=tuple(layer["Arn"] for layer in function.layers or []),
        reserved_concurrency=None if function.reserved_concurrency in (None, "") else int(function.reserved_concurrency),
    )


def layer_reader(function: Any) -> Callable[[str], bytes]:
    """Reads a layer version's zip from moto's Lambda backend, by ARN."""
    from moto.awslambda.models import lambda_backends

    def read(arn: str) -> bytes:
        layer = lambda_backends[function.account_id][function.region].layers_versions_by_arn(arn)
        return layer.code_bytes if layer is not None else b""

    return read


def _moto_log_sink(function: Any) -> LogSink:
    def write(spec: FunctionSpec, stream: str, lines: list[str]) -> None:
        backend = function.logs_backend
        backend.ensure_log_group(spec.log_group)
        backend.ensure_log_stream(spec.log_group, stream)
        now = int(time.time() * 1000)
        backend.put_log_events(spec.log_group, stream, [{"timestamp": now, "message": line} for line in lines])

    return write


MAX_SYNC_PAYLOAD_BYTES = 6_291_456  # AWS's request payload limit for synchronous Invoke


def _lambda_error(error_type: str, message: str, status: int) -> Exception:
    from moto.awslambda.exceptions import LambdaClientError

    error = LambdaClientError(error_type, message)
    error.code = status
    return error


def _run_invocation(function: Any, event: Any) -> tuple[str, bool, str]:
    """(payload JSON, function error?, logs) from the installed runner; throttles become HTTP 429."""
    from scones.local.emulator.lambda_pool import InvocationThrottled

    if _installed is None:
        raise RuntimeError("scones.local.emulator.moto_seam: no Lambda invoker installed")
    try:
        spec = function_spec(function)
        layers = {"layer_zip": layer_reader(function)} if spec.layers else {}  # invokers without layer support still fit
        result = _installed.invoke(spec, lambda: function.code_bytes, event, log_sink=_moto_log_sink(function), **layers)
    except InvocationThrottled as exc:
        raise _lambda_error("TooManyRequestsException", f"{exc} Reason: {exc.reason}", 429) from exc
    return result.payload, result.errored, result.logs


def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
    """Replacement for LambdaFunction._invoke_lambda, for moto's other callers (event source mappings)."""
    return _run_invocation(self, {} if event in (None, "{}") else event)  # moto passes the text "{}" for no payload


def _invoke(self: Any, body: str | bytes | None, request_headers: Any, response_headers: Any) -> str | bytes:
    """Replacement for LambdaFunction.invoke: AWS's payload rules, then moto's own response headers."""
    if body and len(body) > MAX_SYNC_PAYLOAD_BYTES:
        raise _lambda_error("RequestTooLargeException", f"Request must be smaller than {MAX_SYNC_PAYLOAD_BYTES} bytes for the InvokeFunction operation", 413)
    try:
        event = json.loads(body) if body else {}  # no payload: the handler gets {}, as on AWS
    except ValueError as exc:
        raise _lambda_error("InvalidRequestContentException", f"Could not parse request body into json: {exc}", 400) from exc
    payload, errored, logs = _run_invocation(self, event)
    if errored:
        response_headers["x-amz-function-error"] = "Unhandled"
    if request_headers.get("x-amz-invocation-type", "RequestResponse") == "RequestResponse":
        response_headers["x-amz-log-result"] = base64.b64encode(logs.encode("utf-8")).decode("utf-8")
        return payload.encode("utf-8")
    return payload


def install_lambda_invoker(invoker: LambdaInvoker) -> Callable[[], None]:
    """Put `invoker` behind moto's Lambda invoke; returns a function that restores moto's own."""
    global _installed
    from moto.awslambda.models import LambdaFunction

    originals = {name: LambdaFunction.__dict__[name] for name in ("_invoke_lambda", "invoke")}
    _installed = invoker
    LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign]
    LambdaFunction.invoke = _invoke  # type: ignore[method-assign]

    def uninstall() -> None:
        global _installed
        for name, original in originals.items():
            setattr(LambdaFunction, name, original)
        _installed = None

    return uninstall


# --- Step Functions ----------------------------------------------------------------------------


def enable_state_machine_execution() -> None:
    """Step Functions runs definitions (moto's default only records executions)."""
    from moto.moto_api._internal import moto_api_backend

    moto_api_backend.set_config(STEP_FUNCTIONS_EXECUTE)


def install_step_functions() -> None:
    """Executions run, fast and as on AWS (every patch of `moto_seam_stepfunctions`), and S3 → EventBridge
    → Step Functions (below); once per process."""
    from scones.local.emulator import moto_seam_stepfunctions

    enable_state_machine_execution()
    if not moto_seam_stepfunctions.installed:
        for patch in (*moto_seam_stepfunctions.PATCHES, send_s3_events_as_aws_does, report_eventbridge_notifications,
                      start_executions_from_eventbridge):
            patch()
        moto_seam_stepfunctions.installed = True


# --- S3 → EventBridge → Step Functions ---------------------------------------------------------


def send_s3_events_as_aws_does() -> None:
    """S3's EventBridge events in AWS's shape (`etag`, `reason: PutObject`), to ENABLED rules whose
    pattern matches; moto 5.2 sends `eTag` / `reason: ObjectCreated` and hides every error."""
    from moto.s3 import notifications

    def _send_event_bridge_message(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
        from moto.events.models import events_backends

        event = event_targets.s3_object_event(
            account=account_id, region=bucket.region_name, bucket=bucket.name, bucket_arn=bucket.arn, key=key.name,
            size=key.size, etag=key.etag, version_id=key.version_id, event_name=event_name,
            detail_type=notifications._detail_type(event_name),
        )  # fmt: skip
        for event_bus in events_backends[account_id][bucket.region_name].event_buses.values():
            for rule in list(event_bus.rules.values()):
                if rule.state == "ENABLED":
                    rule.send_to_targets(event, transform_input=False)

    notifications._send_event_bridge_message = _send_event_bridge_message


def report_eventbridge_notifications() -> None:
    """GetBucketNotificationConfiguration shows `EventBridgeConfiguration` when it is on, as AWS does
    (moto 5.2 stores it but drops it from the answer), so a re-deploy sees the switch and writes nothing."""
    from moto.s3.responses import S3Response

    original = S3Response.get_bucket_notification

    def get_bucket_notification(self: Any) -> Any:
        status, headers, body = original(self)
        config = self.backend.get_bucket_notification_configuration(self.bucket_name)
        on = config is not None and config.event_bridge is not None
        if on and isinstance(body, str) and "EventBridgeConfiguration" not in body:
            body = re.sub(r"<NotificationConfiguration([^>]*?)/>", r"<NotificationConfiguration\1></NotificationConfiguration>", body)
            body = body.replace("</NotificationConfiguration>", "<EventBridgeConfiguration/></NotificationConfiguration>")
        return status, headers, body

    S3Response.get_bucket_notification = get_bucket_notification  # type: ignore[method-assign]


def start_executions_from_eventbridge() -> None:
    """EventBridge rules start Step Functions executions (moto 5.2 raises NotImplementedError for a
    `states` target), with the target's InputTransformer applied as AWS always does."""
    from moto.events.models import Rule

    original = Rule.send_to_targets

    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        is_states = [target["Arn"].split(":")[2] == "states" for target in self.targets]
        if any(is_states) and self.event_pattern.matches_event(original_event):
            for target, states in zip(self.targets, is_states):
                if states:
                    _start_execution_for(target, original_event)
        if not all(is_states):
            others = copy.copy(self)
            others.targets = [target for target, states in zip(self.targets, is_states) if not states]
            original(others, original_event, transform_input)

    Rule.send_to_targets = send_to_targets  # type: ignore[method-assign]


def _start_execution_for(target: dict, event: dict) -> None:
    from moto.stepfunctions.responses import get_backend

    region, account = target["Arn"].split(":")[3:5]
    if "InputTransformer" in target:
        execution_input = event_targets.transform_input(target["InputTransformer"], event)
    else:
        execution_input = target.get("Input") or json.dumps(event)
    backend: Any = get_backend(account, region)
    backend.start_execution(target["Arn"], None, execution_input)  # no name: name_unnamed_executions gives one


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


def add_update_endpoint() -> None:
    """moto 5.2 has no UpdateEndpoint: switch the endpoint's config as AWS does once the new fleet
    is InService. Remove when moto implements it (test_moto_lacks_update_endpoint says so)."""
    from moto.core.responses import ActionResult
    from moto.sagemaker.responses import SageMakerResponse

    if "update_endpoint" in vars(SageMakerResponse):
        return

    def update_endpoint(self: Any) -> Any:
        backend = self.sagemaker_backend
        endpoint = backend.endpoints[self._get_param("EndpointName")]
        config = backend.describe_endpoint_config(self._get_param("EndpointConfigName"))
        endpoint.endpoint_config_name = config["EndpointConfigName"]
        endpoint.production_variants = config["ProductionVariants"]
        endpoint.data_capture_config = config["DataCaptureConfig"]
        return ActionResult({"EndpointArn": endpoint.arn})

    SageMakerResponse.update_endpoint = update_endpoint  # type: ignore[attr-defined]
    SageMakerResponse.scones_shim = True  # type: ignore[attr-defined]
