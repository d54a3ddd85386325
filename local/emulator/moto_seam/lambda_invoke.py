"""The seam's Lambda section: moto's `LambdaFunction.invoke` / `_invoke_lambda` run our invoker.
"""
from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any, Protocol

from scones.local.emulator.lambda_spec import FunctionSpec, InvocationResult, LogSink



class LambdaInvoker(Protocol):
    """What replaces moto's Docker invocation: the process runner, or a test's in-process one."""

    def invoke(self, spec: FunctionSpec, code_zip: Callable[[], bytes], event: Any, log_sink: LogSink | None = None,
               layer_zip: Callable[[str], bytes] | None = None) -> InvocationResult: ...  # fmt: skip


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
