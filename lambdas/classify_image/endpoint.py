"""The SageMaker runtime call, with its errors renamed to AWS's error codes.

The state machine retries the transient ones (ModelNotReadyException, ThrottlingException,
ServiceUnavailable, EndpointConnectionError) with backoff, so botocore itself retries little.
"""
from __future__ import annotations

import json
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, ConnectionError, ReadTimeoutError

from ..common.errors import WorkflowError

CLIENT_CONFIG = Config(
    connect_timeout=2, read_timeout=20, retries={"max_attempts": 2, "mode": "standard"}
)


class EndpointError(WorkflowError):
    """The endpoint answered with an error code this module has no class for."""


class ModelError(EndpointError):
    """The model container failed on this request (HTTP 424)."""


class ValidationError(EndpointError):
    """The endpoint rejected the request (HTTP 400)."""


class ModelNotReadyException(EndpointError):
    """The model is not loaded yet (HTTP 429); transient."""


class ServiceUnavailable(EndpointError):
    """The endpoint is overloaded or restarting (HTTP 503); transient."""


class ThrottlingException(EndpointError):
    """Too many requests; transient."""


class EndpointConnectionError(EndpointError):
    """Nothing answered at the endpoint's URL, or it stopped answering mid-request."""


_BY_CODE = {
    cls.__name__: cls
    for cls in (ModelError, ValidationError, ModelNotReadyException, ServiceUnavailable, ThrottlingException)
}


def invoke_endpoint(runtime: Any, endpoint_name: str, body: bytes, content_type: str) -> list[float]:
    """The endpoint's class probabilities for one image."""
    try:
        response = runtime.invoke_endpoint(
            EndpointName=endpoint_name, ContentType=content_type, Accept="application/json", Body=body
        )
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "Unknown")
        message = error.response.get("Error", {}).get("Message", str(error))
        raise _BY_CODE.get(code, EndpointError)(f"endpoint {endpoint_name}: {code}: {message}") from error
    except (ConnectionError, ConnectionClosedError, ReadTimeoutError) as error:
        raise EndpointConnectionError(f"endpoint {endpoint_name} unreachable: {error}") from error
    payload = response["Body"].read()
    try:
        return json.loads(payload)
    except ValueError as error:
        raise ModelError(f"endpoint {endpoint_name} returned non-JSON: {payload[:80]!r}") from error
