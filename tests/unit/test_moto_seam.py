"""The contract of scones.local.emulator.moto_seam: fail loudly, with the reason, if moto moves
anything the seam touches (its docstring lists each internal and why)."""
from __future__ import annotations

import inspect
import io
import json
import zipfile
from importlib.metadata import version

import boto3
import pytest
from moto import mock_aws
from moto.awslambda.models import LambdaFunction, lambda_backends

from scones.local.emulator import lambda_runner, moto_seam
from scones.local.emulator.replacement import original

SEAM = "moto.awslambda.models.LambdaFunction._invoke_lambda"


def test_moto_version_is_the_pinned_series():
    major, minor = (int(part) for part in version("moto").split(".")[:2])
    assert (major, minor) == (5, 2), (
        f"moto {version('moto')} installed; the Lambda seam ({SEAM}) was verified on 5.2.x. "
        "Re-check lambda_runner against the new moto, then widen the pin in pyproject.toml."
    )


def test_invoke_lambda_has_the_signature_the_runner_replaces():
    assert "_invoke_lambda" in LambdaFunction.__dict__, f"{SEAM} no longer exists: the process runner cannot hook in"
    signature = inspect.signature(LambdaFunction.__dict__["_invoke_lambda"])
    assert list(signature.parameters) == ["self", "event"], f"{SEAM} signature changed: {signature}"
    assert signature.return_annotation in ("tuple[str, bool, str]", tuple[str, bool, str]), (
        f"{SEAM} no longer returns (payload, errored, logs): {signature.return_annotation}"
    )


class _FakeFunction:
    """Just enough of a LambdaFunction for LambdaFunction.invoke to call our seam."""

    def __init__(self, result: tuple[str, bool, str]):
        self.result = result
        self.events: list = []

    def _invoke_lambda(self, event=None):
        self.events.append(event)
        return self.result


def test_invoke_turns_errored_into_a_function_error_and_returns_the_payload():
    error = json.dumps({"errorType": "ThresholdConfidenceNotMet", "errorMessage": "low"})
    fake = _FakeFunction((error, True, "log line"))
    headers: dict = {}
    payload = LambdaFunction.invoke(fake, '{"a": 1}', {}, headers)  # type: ignore[arg-type]
    assert fake.events == [{"a": 1}], "moto no longer passes the decoded JSON event to _invoke_lambda"
    assert payload == error.encode(), "moto no longer returns _invoke_lambda's payload as the response body"
    assert headers.get("x-amz-function-error"), "moto no longer sets X-Amz-Function-Error when errored is True"
    assert "x-amz-log-result" in headers, "moto no longer returns the logs as x-amz-log-result"


def test_invoke_without_error_sets_no_function_error():
    headers: dict = {}
    LambdaFunction.invoke(_FakeFunction(('{"ok": 1}', False, "")), "", {}, headers)  # type: ignore[arg-type]
    assert "x-amz-function-error" not in headers


def test_step_functions_reads_error_name_from_function_error_payload():
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils, state_task_lambda

    source = inspect.getsource(lambda_eval_utils) + inspect.getsource(state_task_lambda)
    assert 'get("FunctionError")' in source, "moto's Step Functions no longer checks FunctionError on Lambda results"
    assert '["errorType"]' in source, "moto's Step Functions no longer takes the error name from the payload's errorType"


def test_step_functions_calls_lambda_on_moto_port(monkeypatch: pytest.MonkeyPatch):
    from moto import settings

    monkeypatch.setenv("MOTO_PORT", "4567")
    assert settings.moto_server_port() == "4567", "moto no longer reads MOTO_PORT: moto_host must set the port another way"


def test_set_config_enables_state_machine_execution():
    from moto.core.config import default_user_config

    saved = dict(default_user_config["stepfunctions"])
    try:
        moto_seam.enable_state_machine_execution()
        assert default_user_config["stepfunctions"]["execute_state_machine"] is True
    finally:
        default_user_config["stepfunctions"] = saved


@mock_aws
def test_function_spec_reads_the_attributes_moto_keeps():
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("fn.py", "def handler(event, context):\n    return event\n")
    iam = boto3.client("iam", region_name="us-east-1")
    role = iam.create_role(RoleName="seam", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    boto3.client("lambda", region_name="us-east-1").create_function(
        FunctionName="seam-fn", Runtime="python3.11", Role=role, Handler="fn.handler",
        Code={"ZipFile": code.getvalue()}, Timeout=7, MemorySize=256, Environment={"Variables": {"K": "v"}},
        EphemeralStorage={"Size": 2048},
    )  # fmt: skip
    boto3.client("lambda", region_name="us-east-1").put_function_concurrency(FunctionName="seam-fn", ReservedConcurrentExecutions=3)
    function = lambda_backends["123456789012"]["us-east-1"].get_function("seam-fn")
    spec = moto_seam.function_spec(function)
    assert (spec.name, spec.handler, spec.timeout_s, spec.memory_mb) == ("seam-fn", "fn.handler", 7.0, 256)
    assert spec.ephemeral_storage_mb == 2048, "moto no longer keeps EphemeralStorage.Size in ephemeral_storage"
    assert spec.layers == (), "moto no longer keeps the function's layers in layers"
    assert callable(getattr(lambda_backends["123456789012"]["us-east-1"], "layers_versions_by_arn", None)), (
        "moto's Lambda backend lost layers_versions_by_arn: layer_reader cannot read layer zips"
    )
    assert spec.reserved_concurrency == 3, "moto no longer keeps ReservedConcurrentExecutions in reserved_concurrency"
    assert spec.environment == {"K": "v"} and spec.code_sha256 and spec.arn.endswith(":function:seam-fn")
    assert function.code_bytes == code.getvalue(), "moto no longer keeps the deployment zip in code_bytes"
    for method in ("ensure_log_group", "ensure_log_stream", "put_log_events"):
        assert callable(getattr(function.logs_backend, method, None)), f"moto's logs backend lost {method}"


def test_invoke_has_the_signature_the_seam_replaces():
    signature = inspect.signature(LambdaFunction.__dict__["invoke"])
    assert list(signature.parameters) == ["self", "body", "request_headers", "response_headers"], (
        f"moto.awslambda.models.LambdaFunction.invoke signature changed: {signature}"
    )


def test_lambda_client_error_carries_an_http_status():
    from moto.awslambda.exceptions import LambdaClientError

    error = moto_seam.lambda_invoke._lambda_error("TooManyRequestsException", "Rate Exceeded.", 429)
    assert isinstance(error, LambdaClientError) and error.code == 429
    assert json.loads(error.get_body())["__type"] == "TooManyRequestsException"


def test_install_replaces_and_uninstall_restores_the_seam(tmp_path):
    originals = {name: LambdaFunction.__dict__[name] for name in ("_invoke_lambda", "invoke")}
    runner = lambda_runner.ProcessLambdaRunner("http://127.0.0.1:1", tmp_path, runtime_dir=tmp_path)
    uninstall = moto_seam.install_lambda_invoker(runner)
    try:
        assert LambdaFunction.__dict__["_invoke_lambda"] is moto_seam.lambda_invoke._invoke_lambda
        assert LambdaFunction.__dict__["invoke"] is moto_seam.lambda_invoke._invoke
    finally:
        uninstall()
        runner.close()
    assert {name: LambdaFunction.__dict__[name] for name in originals} == originals


def install_make_server_patches() -> None:
    """make_server installs the seam's server patches (once per process); the server itself is not needed."""
    moto_seam.make_server("127.0.0.1", 0).server_close()


def test_make_server_builds_moto_app_and_sets_moto_port(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MOTO_PORT", raising=False)
    server = moto_seam.make_server("127.0.0.1", 0)
    try:
        import os

        assert os.environ["MOTO_PORT"] == str(server.server_port)
    finally:
        server.server_close()


def test_backend_lookup_is_cached_per_host_and_still_answers_what_moto_would():
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    install_make_server_patches()
    app = DomainDispatcherApplication(create_backend_app)
    original = inspect.unwrap(DomainDispatcherApplication.get_backend_for_host)
    assert original is not DomainDispatcherApplication.get_backend_for_host, "make_server installs the cache"
    for host in ("states.us-east-1.amazonaws.com", "s3.amazonaws.com", "lambda.eu-west-1.amazonaws.com", None):
        assert app.get_backend_for_host(host) == original(app, host)
    assert app.get_backend_for_host("states.us-east-1.amazonaws.com") == "stepfunctions"


def test_a_services_operation_router_is_built_once_by_concurrent_first_requests(monkeypatch: pytest.MonkeyPatch):
    import threading
    import time

    from moto.core import routing
    from moto.core.utils import get_service_model

    install_make_server_patches()
    built = []

    class SlowRestRouter(routing.RestRouter):  # widens the race moto's own lock-free check loses
        def __init__(self, service_model) -> None:
            built.append(self)
            time.sleep(0.05)
            super().__init__(service_model)

    monkeypatch.setitem(routing.PROTOCOL_ROUTERS, "rest-json", SlowRestRouter)
    router = routing.ServiceOperationRouter(get_service_model("lambda"))
    start, got = threading.Barrier(8), []

    def first_request() -> None:
        start.wait()
        got.append(router._get_router("rest-json"))

    threads = [threading.Thread(target=first_request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1 and got == built * 8
    source = inspect.getsource(original(routing.ServiceOperationRouter, "_get_router"))
    assert "self._routers[protocol] = router_cls(self._service_model)" in source, "moto's router cache moved"


def test_operation_rules_compile_their_url_builders_when_first_called():
    from moto.core.routing import RestRouter, SmithyRule
    from moto.core.utils import get_service_model
    from werkzeug.routing import Rule

    install_make_server_patches()
    router = RestRouter(get_service_model("lambda"))
    rules = list(router._map.iter_rules())
    assert len(rules) > 80 and all(isinstance(rule, SmithyRule) for rule in rules)
    assert all("compiled_when_called" in rule._build.__qualname__ for rule in rules), "builders compiled up front"
    adapter = router._map.bind("lambda.us-east-1.amazonaws.com")
    for rule in rules:  # a built URL matches its own rule again: the builders work once compiled
        values = {name: "fn-1" for name in rule.arguments}
        _, path = rule.build(values, append_unknown=False)
        method = sorted(rule.methods)[0]
        assert adapter.match(path, method, return_rule=True)[0].rule == rule.rule, path
    compile_source = inspect.getsource(Rule.compile)
    assert "self._build = self._compile_builder(False).__get__(self, None)" in compile_source, "werkzeug moved _build"
    assert "self._build_unknown = self._compile_builder(True).__get__(self, None)" in compile_source


def test_action_method_names_are_cached_but_see_methods_added_later():
    from moto.core import responses
    from moto.stepfunctions.responses import StepFunctionResponse

    install_make_server_patches()
    names = responses.method_names_from_class(StepFunctionResponse)
    assert "start_execution" in names and "describe_execution" in names
    assert responses.method_names_from_class(StepFunctionResponse) is names, "listed again without a change"

    class Late(StepFunctionResponse):
        pass

    assert "scones_probe" not in responses.method_names_from_class(Late)
    Late.scones_probe = lambda self: None
    assert "scones_probe" in responses.method_names_from_class(Late)
    assert "method_names = method_names_from_class(self.__class__)" in inspect.getsource(responses.BaseResponse.call_action)


class _RecordingPlane:
    """Stands in for the control plane: records what the seam hands it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.reports: dict[str, object] = {}

    def create(self, request, report) -> None:
        self.calls.append(("create", request))
        self.reports[request.endpoint_name] = report

    def update(self, request, report) -> None:
        self.calls.append(("update", request))
        self.reports[request.endpoint_name] = report

    def delete(self, endpoint_name: str) -> None:
        self.calls.append(("delete", endpoint_name))


def _endpoint_config(sm, name: str) -> None:
    sm.create_model(ModelName=name, ExecutionRoleArn="arn:aws:iam::123456789012:role/r", PrimaryContainer={
        "Image": "image:1", "ModelDataUrl": f"s3://b/{name}/model.tar.gz", "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}})
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1,
        "InitialVariantWeight": 1.0}], DataCaptureConfig={
        "EnableCapture": True, "InitialSamplingPercentage": 50, "DestinationS3Uri": "s3://b/capture",
        "CaptureOptions": [{"CaptureMode": "Input"}]})


@mock_aws
def test_sagemaker_control_plane_gets_create_update_delete_and_its_status_is_what_describe_says():
    from moto.sagemaker.models import SageMakerModelBackend

    original = SageMakerModelBackend.__dict__["create_endpoint"]
    plane = _RecordingPlane()
    uninstall = moto_seam.install_sagemaker_control_plane(plane)
    try:
        sm = boto3.client("sagemaker", region_name="us-east-1")
        _endpoint_config(sm, "one")
        _endpoint_config(sm, "two")
        sm.create_endpoint(EndpointName="ep", EndpointConfigName="one")
        assert sm.describe_endpoint(EndpointName="ep")["EndpointStatus"] == "Creating", "moto's FakeEndpoint status moved"
        kind, request = plane.calls[0]
        assert kind == "create" and request.endpoint_name == "ep" and request.config_name == "one"
        assert request.account_id == moto_seam.default_account_id() == "123456789012"
        [variant] = request.variants
        assert (variant.variant_name, variant.model_data_url, variant.image) == ("AllTraffic", "s3://b/one/model.tar.gz", "image:1")
        assert variant.environment == {"SAGEMAKER_PROGRAM": "inference.py"}
        assert request.data_capture["InitialSamplingPercentage"] == 50

        with pytest.raises(sm.exceptions.ClientError, match="in-progress"):
            sm.update_endpoint(EndpointName="ep", EndpointConfigName="two")
        plane.reports["ep"]("InService", None, "one")
        assert sm.describe_endpoint(EndpointName="ep")["EndpointStatus"] == "InService"

        sm.update_endpoint(EndpointName="ep", EndpointConfigName="two")
        assert sm.describe_endpoint(EndpointName="ep")["EndpointStatus"] == "Updating"
        assert plane.calls[-1][0] == "update"
        plane.reports["ep"]("InService", None, "two")
        described = sm.describe_endpoint(EndpointName="ep")
        assert (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", "two")

        sm.update_endpoint(EndpointName="ep", EndpointConfigName="one")
        plane.reports["ep"]("Failed", "it broke", None)
        described = sm.describe_endpoint(EndpointName="ep")
        assert (described["EndpointStatus"], described["FailureReason"]) == ("Failed", "it broke")

        with pytest.raises(sm.exceptions.ClientError, match="already existing"):
            sm.create_endpoint(EndpointName="ep", EndpointConfigName="one")
        sm.delete_endpoint(EndpointName="ep")
        assert plane.calls[-1] == ("delete", "ep")
    finally:
        uninstall()
    assert SageMakerModelBackend.__dict__["create_endpoint"] is original
    assert "update_endpoint" not in vars(SageMakerModelBackend)


# --- Step Functions section (moto_seam/stepfunctions.py): what each patch relies on ---------------


def test_server_routing_calls_the_module_listing_through_the_module():
    from moto import backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    assert callable(backends.list_of_moto_modules)
    source = inspect.getsource(DomainDispatcherApplication.get_backend_for_host)
    assert "backends.list_of_moto_modules()" in source, "moto no longer routes through list_of_moto_modules: drop cache_moto_module_listing"


def test_parser_errors_name_themselves_in_code_not_type():
    from moto.core.exceptions import AWSError
    from moto.stepfunctions.parser.api import InvalidDefinition, InvalidExecutionInput

    for error in (InvalidExecutionInput, InvalidDefinition):
        assert issubclass(error, AWSError) and error.code == error.__name__, f"moto changed {error.__name__}"
    from scones.local.emulator.moto_seam import stepfunctions as moto_seam_stepfunctions

    moto_seam_stepfunctions.give_parser_errors_their_codes()
    assert InvalidExecutionInput("bad").error_type == "InvalidExecutionInput"


def test_execution_worker_parses_the_definition_in_one_method():
    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    source = inspect.getsource(original(ExecutionWorker, "_get_evaluation_entrypoint"))
    assert "AmazonStateLanguageParser.parse" in source and "state_machine_details.definition" in source
    assert isinstance(inspect.getattr_static(EvalComponent, "heap_key"), property), "EvalComponent.heap_key moved"


def test_cached_program_is_shared_with_every_heap_key_set():
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    from scones.local.emulator.moto_seam.stepfunctions import _set_heap_keys

    definition = json.dumps({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "f"}, "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 2}], "End": True}}})  # fmt: skip
    program = AmazonStateLanguageParser.parse(definition)[0]
    _set_heap_keys(program, set())
    retrier = program.states.states["A"].retry.retriers[0]
    assert retrier.max_attempts._EvalComponent__heap_key is not None, "heap keys are not found by walking the program"


def test_lambda_tasks_get_their_client_from_boto_client_for():
    from moto.awslambda.models import LambdaBackend
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    for function in (lambda_eval_utils._invoke_lambda_function, lambda_eval_utils.exec_lambda_function):
        assert "boto_client_for(" in inspect.getsource(function), f"{function.__name__} no longer uses boto_client_for"
        assert ".invoke(**parameters)" in inspect.getsource(function)
    parameters = list(inspect.signature(LambdaBackend.invoke).parameters)
    assert parameters == ["self", "function_name", "qualifier", "body", "headers", "response_headers"]


def test_in_process_client_answers_like_botocore_for_a_missing_function():
    from botocore.exceptions import ClientError

    from scones.local.emulator.moto_seam.lambda_tasks import InProcessLambdaClient

    with mock_aws(), pytest.raises(ClientError) as raised:
        InProcessLambdaClient("us-east-1").invoke(FunctionName="nothing", Payload=b"{}")
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_in_process_client_raises_botocores_modeled_throttle():
    from botocore.exceptions import ClientError

    from scones.local.emulator.moto_seam.lambda_tasks import client_error

    error = client_error("TooManyRequestsException", "Rate Exceeded.")
    assert isinstance(error, ClientError) and type(error).__name__ == "TooManyRequestsException"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 429 and error.response["ResponseMetadata"]["RequestId"]


def test_lambda_tasks_name_client_errors_where_the_seam_reads_them():
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_lambda import (
        StateTaskServiceLambda,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_lambda import StateTaskLambda

    naming = inspect.getsource(StateTaskServiceLambda._error_cause_from_client_error)
    assert 'f"Lambda.{error_code}"' in naming and "['ResponseMetadata']['HTTPStatusCode']" in naming
    assert "def _from_error(self, env: Environment, ex: Exception)" in inspect.getsource(StateTaskLambda)


def test_jsonata_components_keep_expression_and_environment_state():
    from moto.stepfunctions.parser.asl.component.common.string.string_expression import StringJSONata, StringVariableSample
    from moto.stepfunctions.parser.asl.eval.states import States
    from moto.stepfunctions.parser.asl.eval.variable_store import VariableStore

    assert "_eval_body" in vars(StringJSONata) and "_eval_body" in vars(StringVariableSample)
    assert {"query_language_mode", "expression"} <= set(inspect.signature(StringVariableSample.__init__).parameters)
    store = VariableStore()
    assert store._outer_scope == {} and store._inner_scope == {}, "VariableStore scopes moved"
    states = States({"Execution": {"Input": {"a": 1}}})  # type: ignore[typeddict-item]
    assert states._states_data["input"] == {"a": 1}, "States._states_data moved"


def test_parser_backend_validates_and_starts_where_the_seam_wraps():
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    assert isinstance(StepFunctionsParserBackend.__dict__["_validate_definition"], staticmethod)
    parameters = list(inspect.signature(StepFunctionsParserBackend.start_execution).parameters)
    assert parameters[:4] == ["self", "state_machine_arn", "name", "execution_input"]


def test_result_path_reads_its_source_attribute():
    from moto.stepfunctions.parser.asl.component.common.path.result_path import ResultPath

    assert ResultPath("$.failure").result_path_src == "$.failure" and "_eval_body" in vars(ResultPath)


def test_s3_and_eventbridge_functions_the_trigger_replaces():
    from moto.events.models import Rule
    from moto.s3 import notifications

    parameters = list(inspect.signature(notifications._send_event_bridge_message).parameters)
    assert parameters == ["account_id", "bucket", "event_name", "key"]
    assert "_send_event_bridge_message(" in inspect.getsource(notifications.send_event)
    assert notifications._detail_type("s3:ObjectCreated:Put") == "Object Created"
    assert list(inspect.signature(original(Rule, "send_to_targets")).parameters) == ["self", "original_event", "transform_input"]
    assert "states" not in inspect.getsource(original(Rule, "send_to_targets")), "moto now sends to Step Functions itself"


def test_sync_execution_exists_but_moto_does_not_route_it():
    from moto.stepfunctions import models
    from moto.stepfunctions.parser.backend.execution import SyncExecution
    from moto.stepfunctions.responses import StepFunctionResponse

    assert callable(SyncExecution.to_start_sync_execution_output) and "start" in vars(SyncExecution.__mro__[1])
    ours = vars(StepFunctionResponse).get("start_sync_execution")
    assert ours is None or ours.__module__ == "scones.local.emulator.moto_seam.stepfunctions", (
        "moto now implements StartSyncExecution: drop add_start_sync_execution")
    assert 'self.type = sm_type or "STANDARD"' in inspect.getsource(models), "moto moved the state machine's type"


def test_timed_evaluation_still_has_the_steps_the_inline_form_repeats():
    from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState

    from scones.local.emulator.moto_seam.stepfunctions import AFTER_EXECUTION

    source = inspect.getsource(original(ExecutionState, "_evaluate_with_timeout"))
    assert "Thread(target=_exec_and_notify" in source, "moto no longer starts a thread per state: drop run_untimed_states_inline"
    positions = [source.find(statement) for statement in AFTER_EXECUTION]
    assert -1 not in positions and positions == sorted(positions), "moto changed what follows a state's execution"


def test_bucket_notification_answer_is_built_where_the_seam_adds_eventbridge():
    from moto.s3.models import NotificationConfiguration
    from moto.s3.responses import S3Response

    source = inspect.getsource(original(S3Response, "get_bucket_notification"))
    assert "get_bucket_notification_configuration(" in source and "EventBridge" not in source, (
        "moto now reports EventBridgeConfiguration itself: drop report_eventbridge_notifications")
    assert "event_bridge" in inspect.signature(NotificationConfiguration.__init__).parameters


def test_recorder_writes_whole_lines_under_concurrent_requests(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """moto's recorder appends a JSON line in two unlocked writes; the seam serialises them."""
    import threading
    from types import SimpleNamespace

    from moto.moto_api._internal.recorder.models import Recorder

    from scones.local.emulator.moto_seam.server import serialise_recorder_writes

    monkeypatch.setattr(Recorder, "_record_request", Recorder._record_request)  # undone after the test
    serialise_recorder_writes()
    serialise_recorder_writes()  # idempotent: one lock, not two wrappers
    assert Recorder._record_request.__wrapped__.__name__ == "_record_request"
    recorder = Recorder()
    recorder._location, recorder._user_enabled = str(tmp_path / "recording"), True
    body = b"x" * 50_000  # larger than a file buffer: unserialised, the writes of two threads interleave

    def record(n: int) -> None:
        request = SimpleNamespace(raw_path="/", headers={"n": str(n)}, method="POST", raw_url=f"http://h/{n}")
        for _ in range(20):
            recorder._record_request(request, body)

    threads = [threading.Thread(target=record, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = (tmp_path / "recording").read_text().splitlines()
    assert sorted(json.loads(line)["url"] for line in lines) == sorted(f"http://h/{n}" for n in range(8) for _ in range(20))
