"""Every touch of moto's internals, in this one package (a module per service); tests/unit/test_moto_seam.py fails loudly if moto moves one.

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
  install the runner before it serves; the handler keeps HTTP/1.1 connections open (werkzeug closes
  each one after its response: `server.py`).
- `moto.moto_api._internal.recorder.models.Recorder._record_request`: moto's request recording
  writes each JSON line unlocked; `make_server` serialises it (`serialise_recorder_writes`), or
  concurrent requests on our threaded host interleave the lines.
- `DomainDispatcherApplication.get_backend_for_host` (~400 URL regexes tried per request) and
  `moto.core.responses.method_names_from_class` (`inspect.getmembers` per request, read by
  `BaseResponse.call_action`): answered from caches by `make_server` (`server.py`).
- `moto.core.routing.ServiceOperationRouter._get_router` (builds a protocol's router unlocked, the first
  time) and `SmithyRule._compile_builder` (werkzeug's `Rule.compile` compiles two URL builders per rule
  that moto's routers never call): built once under a lock, builders compiled when first called
  (`build_operation_routers_once`, `server.py`).
- `moto.core.base_backend.AccountSpecificBackend._generate_regions` (and its `get_session()`, a boto3
  Session): moto loads each service's whole botocore model to list its regions; `make_server` has it
  read the endpoint prefix from the model's head instead (`backend_regions.py`).
- `moto.settings.moto_server_port()` reads MOTO_PORT: the Step Functions interpreter calls Lambda at
  `localhost:$MOTO_PORT`.
- Step Functions: `stepfunctions.py`, installed by `install_step_functions`; its docstring lists
  each internal.
- S3 → EventBridge → Step Functions: `moto.s3.notifications._send_event_bridge_message` /
  `_detail_type` (S3 events in AWS's shape), `S3Response.get_bucket_notification` (reports
  EventBridgeConfiguration), `moto.events.models.Rule.send_to_targets` (`states` targets start
  executions, the InputTransformer applied).
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

from scones.local.emulator.moto_seam.execution_starts import start_executions_after_response
from scones.local.emulator.moto_seam.lambda_invoke import (
    LambdaInvoker,
    function_spec,
    install_lambda_invoker,
    layer_reader,
)
from scones.local.emulator.moto_seam.s3_events import (
    report_eventbridge_notifications,
    send_s3_events_as_aws_does,
    start_executions_from_eventbridge,
)
from scones.local.emulator.moto_seam.sagemaker import (
    EndpointControlPlane,
    default_account_id,
    endpoint_request,
    install_sagemaker_control_plane,
)
from scones.local.emulator.moto_seam.server import make_server
from scones.local.emulator.moto_seam.stepfunctions import enable_state_machine_execution, install_step_functions

__all__ = [
    "EndpointControlPlane", "LambdaInvoker", "default_account_id", "enable_state_machine_execution",
    "endpoint_request", "function_spec", "install_lambda_invoker", "install_sagemaker_control_plane",
    "install_step_functions", "layer_reader", "make_server", "report_eventbridge_notifications",
    "send_s3_events_as_aws_does", "start_executions_after_response", "start_executions_from_eventbridge",
]
