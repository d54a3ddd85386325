"""The seam's Step Functions → Lambda section: how Lambda tasks reach our runner, and the names their
service errors get (installed with the rest of `stepfunctions.py`'s PATCHES).

- `lambda_eval_utils.boto_client_for` (a boto3 client per Lambda task, back over HTTP): an in-process
  client calling `LambdaBackend.invoke` (and so our runner), raising what botocore raises.
- `StateTaskLambda._from_error` (a function ARN as Resource): moto names every Lambda API error
  `Exception`; AWS names it `Lambda.<code>` (`Lambda.TooManyRequestsException` for a throttle), as
  the optimised integration's `StateTaskServiceLambda._error_cause_from_client_error` already does.
"""
from __future__ import annotations

import functools
import io
import uuid
from typing import Any


def dispatch_lambda_tasks_in_process() -> None:
    """Lambda tasks call moto's Lambda backend in this process (and so our runner), not a new boto3
    client per task that comes back into this server over HTTP."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    lambda_eval_utils.boto_client_for = lambda region, service, state_credentials=None: InProcessLambdaClient(region)


@functools.cache
def _lambda_model() -> tuple[Any, dict[str, int]]:
    """botocore's modeled Lambda exceptions (`client.exceptions`) and each error code's HTTP status."""
    import botocore.session
    from botocore.errorfactory import ClientExceptionsFactory

    model = botocore.session.get_session().get_service_model("lambda")
    statuses = {shape.name: int(shape.metadata.get("error", {}).get("httpStatusCode", 500)) for shape in model.error_shapes}
    return ClientExceptionsFactory().create_client_exceptions(model), statuses


def client_error(code: str, message: str, status: int | None = None) -> Exception:
    """The exception botocore's Lambda client raises for an error answer: its modeled class (a
    ClientError) with `Error` and `ResponseMetadata` as botocore parses them, which the interpreter reads
    to name the error `Lambda.<code>` with AWS's cause text (status code, request id)."""
    exceptions, statuses = _lambda_model()
    status = status or statuses.get(code, 500)
    request_id = str(uuid.uuid4())
    response = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"RequestId": request_id, "HTTPStatusCode": status, "RetryAttempts": 0,
                             "HTTPHeaders": {"x-amzn-requestid": request_id, "x-amzn-errortype": code}},
        "message": message,
    }  # fmt: skip
    return exceptions.from_code(code)(response, "Invoke")


class InProcessLambdaClient:
    """The one call moto's Lambda task makes, `invoke(**parameters)`, answered as botocore would."""

    def __init__(self, region: str):
        self.region = region

    def invoke(self, FunctionName: str, Payload: bytes | str | None = None, Qualifier: str | None = None,
               InvocationType: str = "RequestResponse", **_: Any) -> dict[str, Any]:
        from moto.awslambda.models import lambda_backends
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.core.exceptions import JsonRESTError, ServiceException

        region, account = FunctionName.split(":")[3:5] if FunctionName.startswith("arn:") else (self.region, DEFAULT_ACCOUNT_ID)
        headers, response_headers = {"x-amz-invocation-type": InvocationType}, dict[str, str]()
        try:
            body = lambda_backends[account][region].invoke(FunctionName, Qualifier, Payload or b"{}", headers, response_headers)
        except JsonRESTError as error:
            raise client_error(error.error_type, error.message, int(error.code)) from error
        except ServiceException as error:
            raise client_error(str(error.code), error.message) from error
        result = {"StatusCode": 202 if InvocationType == "Event" else 200, "ExecutedVersion": Qualifier or "$LATEST",
                  "Payload": io.BytesIO(body if isinstance(body, bytes) else (body or "").encode())}
        if "x-amz-function-error" in response_headers:
            result["FunctionError"] = response_headers["x-amz-function-error"]
        return result


def name_lambda_errors_for_function_resources() -> None:
    """A Lambda API error (throttle, missing function, service error) of a task whose Resource is a
    function ARN is named `Lambda.<code>`, as AWS names it and as moto names it for
    `arn:aws:states:::lambda:invoke`: a Retry or Catch on `Lambda.TooManyRequestsException` matches."""
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.api import HistoryEventType, LambdaFunctionFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_lambda import (
        StateTaskServiceLambda,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_lambda import StateTaskLambda
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    original = StateTaskLambda._from_error

    def _from_error(self: Any, env: Any, ex: Exception) -> Any:
        if not isinstance(ex, ClientError):
            return original(self, env, ex)
        error, cause = StateTaskServiceLambda._error_cause_from_client_error(ex)
        details: Any = EventDetails  # a total TypedDict of which AWS sets one key
        return FailureEvent(env=env, error_name=CustomErrorName(error), event_type=HistoryEventType.LambdaFunctionFailed,
                            event_details=details(lambdaFunctionFailedEventDetails=LambdaFunctionFailedEventDetails(
                                error=error, cause=cause)))  # fmt: skip

    StateTaskLambda._from_error = _from_error  # type: ignore[method-assign]
