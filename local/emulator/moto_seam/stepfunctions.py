"""The seam's Step Functions section: every touch of moto's Step Functions, EventBridge and S3-event
internals (installed by `install_step_functions`).

Each patch is one named function; tests/unit/test_moto_seam.py pins what each relies on:
- `moto.backends.list_of_moto_modules` (routing lists moto's package dir per request): listed once.
- `json_path.parse` / `result_path.parse` (jsonpath_ng, a new parser per evaluation): cached per path.
- `moto.stepfunctions.parser.api` errors: `code` copied to AWSError's `TYPE` (InvalidExecutionInput, ...).
- `StepFunctionsParserBackend.start_execution` / `._validate_definition`: unnamed executions get a UUID;
  JSONata that does not parse is InvalidDefinition.
- `ExecutionWorker._get_evaluation_entrypoint` (ANTLR parse per execution): cached per definition;
  `EvalComponent.heap_key` set before a program is shared.
- `ExecutionState._evaluate_with_timeout` (a thread per Task state): untimed states run inline.
- `lambda_eval_utils.boto_client_for` (a boto3 client per Lambda task, back over HTTP): an in-process
  client calling `LambdaBackend.invoke` (and so our runner); `StateTaskLambda._from_error`: Lambda API
  errors named `Lambda.<code>` for a function ARN as Resource too (`lambda_tasks.py`).
- `StringJSONata._eval_body` / `StringVariableSample._eval_body`, reading `Environment.states._states_data`
  and `VariableStore._outer_scope/_inner_scope`: JSONata by `sfn_jsonata` (jsonata-python).
- `ResultPath._eval_body`: States.ResultPathMatchFailure instead of a Python TypeError's text.
- `StepFunctionResponse` gains `start_sync_execution`, running the interpreter's `SyncExecution`.
- `StepFunctionResponse` gains `test_state` (TestState), built from the parser's TestState parts (`test_state.py`),
  with `stateName` and `mock` from its mocked mode (`MockTestCase`, `Environment.mock_test_case`: `test_state_mock.py`);
  a state that goes on, catches or would retry is reported as AWS does (nextState, CAUGHT_ERROR, RETRIABLE), from
  `TestStateExecution`'s worker and communication and the tested state's catchers and retriers (`test_state_execution.py`).
- `StepFunctionBackend.describe_execution` / `StateMachine._handle_name_input_idempotency` (a scan of
  every execution per call): answered from a name index per state machine (`execution_index.py`).
- `ExecutionWorker.start` (the execution's thread): started once the StartExecution answer is written
  (`execution_starts.py`).
- `moto.batch.utils` (the interpreter imports one enum from it): loaded without `moto.batch`'s package
  init, which imports all of EC2 (`lean_imports.py`).
S3 → EventBridge → Step Functions is in `s3_events.py`.
"""
from __future__ import annotations

import copy
import functools
import json
import uuid
from typing import Any, NoReturn

from scones.local.emulator import sfn_jsonata
from scones.local.emulator.moto_seam.execution_index import index_executions_by_name
from scones.local.emulator.moto_seam.execution_starts import defer_execution_starts
from scones.local.emulator.moto_seam.lambda_tasks import dispatch_lambda_tasks_in_process, name_lambda_errors_for_function_resources
from scones.local.emulator.moto_seam.lean_imports import load_batch_enums_alone
from scones.local.emulator.moto_seam.test_state import add_test_state
from scones.local.emulator.replacement import replace_once


def cache_moto_module_listing() -> None:
    """moto's server lists its package directory on every request to route it; list it once."""
    from moto import backends

    modules = frozenset(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules


def cache_json_path_parsing(maxsize: int = 1024) -> None:
    """Each JSONPath (`Payload.$`, OutputPath, ResultPath, ...) is parsed once, not on every evaluation:
    jsonpath_ng builds a parser for every `parse` (~0.4 ms, a dozen per execution). Parsed paths are
    immutable trees that `find` only reads."""
    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.utils import json_path

    for module in (json_path, result_path):
        module.parse = functools.lru_cache(maxsize=maxsize)(module.parse)  # type: ignore[attr-defined]


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

    replace_once(ExecutionWorker, "_get_evaluation_entrypoint", lambda _moto_s: _get_evaluation_entrypoint)


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


# What ExecutionState._evaluate_with_timeout does after its thread, repeated inline (the contract test checks it).
AFTER_EXECUTION = ("env.stack.append(execution_output)", "env.states.set_result(execution_output)",
                   "self.assign_decl.eval(env=env)", "self.result_selector.eval(env=env)", "self.result_path.eval(env)",
                   "env.states.reset(input_value=res)")  # fmt: skip


def run_untimed_states_inline() -> None:
    """A state without TimeoutSeconds runs on its execution's thread: moto starts a thread per Task
    state only to wait for it with the default timeout (99999999 s), and each Thread.start waits for
    the new thread to be scheduled, which costs most on a busy machine. Timed states keep moto's thread."""
    from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState

    def wrap(original: Any) -> Any:
        def _evaluate_with_timeout(self: Any, env: Any) -> None:
            if not self.timeout.is_default_value():
                return original(self, env)
            frame = env.open_frame()
            frame.states.reset(input_value=env.states.get_input())
            frame.stack = copy.deepcopy(env.stack)
            try:
                self._eval_execution(frame)
            finally:
                frame.set_ended()
                env.close_frame(frame)
            execution_output = frame.stack.pop()
            env.stack.append(execution_output)
            if not self._is_language_query_jsonpath():
                env.states.set_result(execution_output)
            if self.assign_decl:
                self.assign_decl.eval(env=env)
            if self.result_selector:
                self.result_selector.eval(env=env)
            if self.result_path:
                self.result_path.eval(env)
            else:
                env.states.reset(input_value=env.stack.pop())

        return _evaluate_with_timeout

    replace_once(ExecutionState, "_evaluate_with_timeout", wrap)


def evaluate_jsonata_in_process() -> None:
    """JSONata (and variable references) evaluated by `sfn_jsonata` with $states and the variables
    bound, where moto 5.2 splices values into the expression text for a JVM evaluator it never installs
    (every JSONata state failed with States.Runtime "'NoneType' object is not callable")."""
    from moto.stepfunctions.parser.asl.component.common.query_language import QueryLanguageMode
    from moto.stepfunctions.parser.asl.component.common.string.string_expression import StringJSONata, StringVariableSample

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
        _fail_state(env, "States.QueryEvaluationError", f"An error occurred while evaluating the expression '{expression}': {error}")
    if must_be_defined and not defined:
        _fail_state(env, "States.QueryEvaluationError", f"The JSONata expression '{expression}' returned nothing (undefined).")
    return value


def _fail_state(env: Any, error: str, cause: str) -> NoReturn:
    """Fail the state with a States.* error as AWS records it (EvaluationFailed for JSONata, else TaskFailed)."""
    from moto.stepfunctions.parser.api import EvaluationFailedEventDetails, HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent, FailureEventException
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    error_name = StatesErrorName(typ=StatesErrorNameType[error.replace(".", "")])
    event_details: Any = EventDetails  # a total TypedDict of which AWS sets one key
    if error == "States.QueryEvaluationError":
        event_type, details = HistoryEventType.EvaluationFailed, event_details(
            evaluationFailedEventDetails=EvaluationFailedEventDetails(error=error, cause=cause))
        env.event_manager.add_event(context=env.event_history_context, event_type=event_type, event_details=details)
    else:
        event_type, details = HistoryEventType.TaskFailed, event_details(
            taskFailedEventDetails=TaskFailedEventDetails(error=error, cause=cause))
    raise FailureEventException(failure_event=FailureEvent(
        env=env, error_name=error_name, event_type=event_type, event_details=details))


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


def fail_result_path_as_aws_does() -> None:
    """A ResultPath that cannot be applied (a field of a non-object input) fails with
    States.ResultPathMatchFailure, not States.Runtime with a Python TypeError's text."""
    from moto.stepfunctions.parser.asl.component.common.path.result_path import ResultPath

    original = ResultPath._eval_body

    def _eval_body(self: Any, env: Any) -> None:
        state_input, path = env.states.get_input(), self.result_path_src
        cause = f"Unable to apply step \"{(path or '').removeprefix('$.')}\" to input {json.dumps(state_input)}"
        if path not in (None, "$") and path.startswith("$.") and not isinstance(state_input, dict):
            _fail_state(env, "States.ResultPathMatchFailure", cause)
        try:
            original(self, env)
        except (TypeError, ValueError, IndexError, KeyError, AttributeError):
            _fail_state(env, "States.ResultPathMatchFailure", cause)

    ResultPath._eval_body = _eval_body  # type: ignore[method-assign]


def add_start_sync_execution() -> None:
    """StartSyncExecution for EXPRESS machines: moto 5.2's interpreter has `SyncExecution` but its API
    does not route the action (it answered 500). TestState: `test_state.py`."""
    from moto.core.responses import ActionResult
    from moto.stepfunctions.responses import StepFunctionResponse

    def start_sync_execution(self: Any) -> Any:
        execution_input = self._get_param("input", if_none="{}")
        output = _start_sync(self.stepfunction_backend, self._get_param("stateMachineArn"), self._get_param("name"),
                             execution_input)  # fmt: skip
        return ActionResult(output)

    StepFunctionResponse.start_sync_execution = start_sync_execution  # type: ignore[attr-defined]


def _start_sync(backend: Any, state_machine_arn: str, name: str | None, execution_input: str) -> Any:
    import datetime

    from moto.stepfunctions.parser.api import InvalidExecutionInput, StateMachineTypeNotSupported
    from moto.stepfunctions.parser.backend.execution import SyncExecution

    state_machine = backend.describe_state_machine(state_machine_arn)
    if state_machine.type != "EXPRESS":  # moto keeps sm_type "STANDARD" for every machine
        raise StateMachineTypeNotSupported("This operation is not supported by this type of state machine")
    try:
        json.loads(execution_input)
    except ValueError as error:
        raise InvalidExecutionInput(str(error)) from error
    name = name or str(uuid.uuid4())
    arn = f"arn:{backend.partition}:states:{backend.region_name}:{backend.account_id}:express:{state_machine.name}:{name}:{uuid.uuid4()}"
    execution = SyncExecution(
        name=name, sm_type=state_machine.type, role_arn=state_machine.roleArn, exec_arn=arn,
        account_id=backend.account_id, region_name=backend.region_name, state_machine=state_machine,
        start_date=datetime.datetime.now(tz=datetime.timezone.utc), cloud_watch_logging_session=None,
        activity_store={}, input_data=execution_input,
    )  # fmt: skip
    execution.start()
    return execution.to_start_sync_execution_output()


installed = False
PATCHES = (
    defer_execution_starts,
    index_executions_by_name,
    cache_json_path_parsing,
    cache_moto_module_listing,
    give_parser_errors_their_codes,
    name_unnamed_executions,
    fail_result_path_as_aws_does,
    add_start_sync_execution,
    add_test_state,
    cache_parsed_definitions,
    dispatch_lambda_tasks_in_process,
    name_lambda_errors_for_function_resources,
    run_untimed_states_inline,
    evaluate_jsonata_in_process,
    reject_invalid_jsonata_at_create,
)


STEP_FUNCTIONS_EXECUTE = {"stepfunctions": {"execute_state_machine": True}}


def enable_state_machine_execution() -> None:
    """Step Functions runs definitions (moto's default only records executions)."""
    from moto.moto_api._internal import moto_api_backend

    moto_api_backend.set_config(STEP_FUNCTIONS_EXECUTE)


def install_step_functions() -> None:
    """Executions run, fast and as on AWS (every patch in PATCHES), and S3 → EventBridge
    → Step Functions (below); once per process."""
    global installed
    from scones.local.emulator.moto_seam.s3_events import (
        report_eventbridge_notifications,
        send_s3_events_as_aws_does,
        start_executions_from_eventbridge,
    )

    enable_state_machine_execution()
    if not installed:
        load_batch_enums_alone()  # before the interpreter's first import
        for patch in (*PATCHES, send_s3_events_as_aws_does, report_eventbridge_notifications,
                      start_executions_from_eventbridge):
            patch()
        installed = True
