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
- `moto.sagemaker.responses.SageMakerResponse`: moto 5.2 has no UpdateEndpoint; `add_update_endpoint`
  adds it.
"""
from __future__ import annotations

import functools
import io
import json
import os
import time
import uuid
from collections.abc import Callable
from typing import Any, NoReturn, Protocol

from scones.local.emulator import sfn_jsonata
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


def cache_moto_module_listing() -> None:
    """moto's server lists its package directory on every request to route it; list it once."""
    from moto import backends

    modules = frozenset(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules


def give_parser_errors_their_codes() -> None:
    """The Step Functions interpreter's API errors (InvalidExecutionInput, InvalidDefinition, ...) carry
    their name in `code`, but moto's AWSError reads `TYPE`: without this they answer 400 with no code."""
    from moto.core.exceptions import AWSError
    from moto.stepfunctions.parser import api

    for error in vars(api).values():
        named = isinstance(error, type) and issubclass(error, AWSError) and isinstance(getattr(error, "code", None), str)
        if named and error.TYPE is None:
            error.TYPE = error.code
            error.STATUS = getattr(error, "status_code", 400)


def cache_parsed_definitions(maxsize: int = 64) -> None:
    """Parse (ANTLR) each definition once, not once per execution.

    A parsed program keeps per-execution state in its Environment; the only lazily set component
    attribute, `heap_key`, is set for every component before the program is shared."""
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    @functools.lru_cache(maxsize=maxsize)
    def parse(definition: str) -> Any:
        program = AmazonStateLanguageParser.parse(definition)[0]
        _set_heap_keys(program, set())
        return program

    def _get_evaluation_entrypoint(self: Any) -> Any:
        return parse(self._evaluation_details.state_machine_details.definition)

    ExecutionWorker._get_evaluation_entrypoint = _get_evaluation_entrypoint  # type: ignore[method-assign]


def _set_heap_keys(node: Any, seen: set[int]) -> None:
    from moto.stepfunctions.parser.asl.component.component import Component
    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent

    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, EvalComponent):
        node.heap_key  # noqa: B018 (the property sets it)
    children = vars(node).values() if isinstance(node, Component) else node.values() if isinstance(node, dict) else node
    for child in children:
        if isinstance(child, Component | list | tuple | dict):
            _set_heap_keys(child, seen)


def dispatch_lambda_tasks_in_process() -> None:
    """Lambda tasks call moto's Lambda backend in this process (and so our runner), not a new boto3
    client per task that comes back into this server over HTTP."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    lambda_eval_utils.boto_client_for = _in_process_client_for


def _in_process_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
    if service != "lambda":
        raise ValueError(f"in-process dispatch serves Lambda only, not {service}")
    return InProcessLambdaClient(region)


class InProcessLambdaClient:
    """The one call moto's Lambda task makes, `invoke(**parameters)`, answered as botocore would."""

    def __init__(self, region: str):
        self.region = region

    def invoke(self, FunctionName: str, Payload: bytes | str | None = None, Qualifier: str | None = None,
               InvocationType: str = "RequestResponse", **_: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError
        from moto.awslambda.models import lambda_backends
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.core.exceptions import JsonRESTError, ServiceException

        account, region = DEFAULT_ACCOUNT_ID, self.region
        if FunctionName.startswith("arn:"):
            region, account = FunctionName.split(":")[3:5]
        response_headers: dict[str, str] = {}
        headers = {"x-amz-invocation-type": InvocationType}
        try:
            body = lambda_backends[account][region].invoke(FunctionName, Qualifier, Payload or b"{}", headers, response_headers)
        except JsonRESTError as error:
            raise ClientError({"Error": {"Code": error.error_type, "Message": error.message}}, "Invoke") from error
        except ServiceException as error:
            raise ClientError({"Error": {"Code": str(error.code), "Message": error.message}}, "Invoke") from error
        payload = body if isinstance(body, bytes) else (body or "").encode()
        result: dict[str, Any] = {"StatusCode": 202 if InvocationType == "Event" else 200,
                                  "Payload": io.BytesIO(payload), "ExecutedVersion": Qualifier or "$LATEST"}
        if "x-amz-function-error" in response_headers:
            result["FunctionError"] = response_headers["x-amz-function-error"]
        return result



def evaluate_jsonata_in_process() -> None:
    """JSONata (and variable references) evaluated by `sfn_jsonata` with $states and the variables
    bound, where moto 5.2 splices values into the expression text for a JVM evaluator it never installs
    (every JSONata state failed with States.Runtime "'NoneType' object is not callable")."""
    from moto.stepfunctions.parser.asl.component.common.query_language import QueryLanguageMode
    from moto.stepfunctions.parser.asl.component.common.string.string_expression import (
        StringJSONata,
        StringVariableSample,
    )

    def jsonata_eval_body(self: Any, env: Any) -> None:
        env.stack.append(_evaluate_jsonata(env, self.expression, with_states=True, must_be_defined=True))

    def variable_sample_eval_body(self: Any, env: Any) -> None:
        with_states = self.query_language_mode == QueryLanguageMode.JSONata
        env.stack.append(_evaluate_jsonata(env, self.expression, with_states=with_states, must_be_defined=False))

    StringJSONata._eval_body = jsonata_eval_body  # type: ignore[method-assign]
    StringVariableSample._eval_body = variable_sample_eval_body  # type: ignore[method-assign]


def _evaluate_jsonata(env: Any, expression: str, *, with_states: bool, must_be_defined: bool) -> Any:
    store = env.variable_store
    variables = {**store._outer_scope, **store._inner_scope}
    states = env.states._states_data if with_states else {}
    try:
        defined, value = sfn_jsonata.evaluate(expression, states, variables)
    except sfn_jsonata.JSONataEvaluationError as error:
        _fail_query_evaluation(env, f"An error occurred while evaluating the expression '{expression}': {error}")
    if must_be_defined and not defined:
        _fail_query_evaluation(env, f"The JSONata expression '{expression}' returned nothing (undefined).")
    return value


def _fail_query_evaluation(env: Any, cause: str) -> NoReturn:
    """States.QueryEvaluationError, recorded as an EvaluationFailed event, as AWS reports it."""
    from moto.stepfunctions.parser.api import EvaluationFailedEventDetails, HistoryEventType
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    error_name = StatesErrorName(typ=StatesErrorNameType.StatesQueryEvaluationError)
    details = EvaluationFailedEventDetails(error=error_name.error_name, cause=cause)
    event_details: Any = EventDetails  # a total TypedDict of which AWS sets one key
    env.event_manager.add_event(context=env.event_history_context, event_type=HistoryEventType.EvaluationFailed,
                                event_details=event_details(evaluationFailedEventDetails=details))
    raise FailureEventException(failure_event=FailureEvent(
        env=env, error_name=error_name, event_type=HistoryEventType.EvaluationFailed,
        event_details=event_details(evaluationFailedEventDetails=details)))


def reject_invalid_jsonata_at_create() -> None:
    """CreateStateMachine / UpdateStateMachine refuse an expression that does not parse, as AWS does
    (InvalidDefinition "INVALID_JSONATA_EXPRESSION: ... at /States/X/Output"); moto accepts them."""
    from moto.stepfunctions.parser.api import InvalidDefinition
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original = StepFunctionsParserBackend.__dict__["_validate_definition"].__func__

    def _validate_definition(definition: str) -> None:
        original(definition)
        try:
            sfn_jsonata.check_definition(definition)
        except sfn_jsonata.JSONataSyntaxError as error:
            raise InvalidDefinition(f"Invalid State Machine Definition: '{error}'") from error

    StepFunctionsParserBackend._validate_definition = staticmethod(_validate_definition)  # type: ignore[method-assign]



def name_unnamed_executions() -> None:
    """StartExecution without a name gets a UUID, as on AWS; moto names it None, so the second unnamed
    start fails with ExecutionAlreadyExists and $$.Execution.Name is null."""
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original = StepFunctionsParserBackend.start_execution

    @functools.wraps(original)
    def start_execution(self: Any, state_machine_arn: str, name: str | None = None, *args: Any, **kwargs: Any) -> Any:
        return original(self, state_machine_arn, name or str(uuid.uuid4()), *args, **kwargs)

    StepFunctionsParserBackend.start_execution = start_execution  # type: ignore[method-assign]


def install_step_functions() -> None:
    """Everything above: executions run, fast (in-process Lambda, parsed once), JSONata, AWS's error codes."""
    enable_state_machine_execution()
    cache_moto_module_listing()
    give_parser_errors_their_codes()
    name_unnamed_executions()
    cache_parsed_definitions()
    dispatch_lambda_tasks_in_process()
    evaluate_jsonata_in_process()
    reject_invalid_jsonata_at_create()


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
