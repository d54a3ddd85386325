"""A warm Lambda execution environment: one process, one handler, many invocations.

Started by `ProcessLambdaRunner` with the function's extracted code as working directory and a
clean environment. Like the AWS Python runtime it imports the handler once (the init phase)
and then serves invocations one at a time. Requests and responses travel as length-prefixed
JSON over two private pipes, so the handler's own stdout/stderr stay free: during an
invocation file descriptors 1 and 2 point at a per-invocation log file the runner reads.

Runs with the standard library only, so nothing of the project leaks into the function.
"""
from __future__ import annotations

import importlib
import json
import logging
import os
import struct
import sys
import time
import traceback
from typing import Any, BinaryIO

_HEADER = struct.Struct(">I")


def write_message(stream: BinaryIO, message: dict[str, Any]) -> None:
    body = json.dumps(message).encode("utf-8")
    stream.write(_HEADER.pack(len(body)) + body)
    stream.flush()


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_message(stream: BinaryIO) -> dict[str, Any] | None:
    """The next message, or None when the other side has closed the pipe."""
    header = _read_exactly(stream, _HEADER.size)
    if len(header) < _HEADER.size:
        return None
    size = _HEADER.unpack(header)[0]
    body = _read_exactly(stream, size)
    if len(body) < size:
        return None
    return json.loads(body)


class LambdaContext:
    """The `context` argument of a Python Lambda handler (the attributes handlers use)."""

    def __init__(self, request_id: str, deadline_ms: int, env: dict[str, str], function_arn: str):
        self.aws_request_id = request_id
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.invoked_function_arn = function_arn
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def error_payload(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    """An exception in the shape AWS's Python runtime reports it (Step Functions reads errorType)."""
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__) if frame.filename != __file__]
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "stackTrace": traceback.format_list(frames),
    }


class _RequestIdFilter(logging.Filter):
    request_id = ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self.request_id
        return True


def _configure_logging() -> _RequestIdFilter:
    """The root handler AWS installs: level, timestamp, request id, message, on stderr."""
    request_filter = _RequestIdFilter()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    handler.formatter.converter = time.gmtime  # type: ignore[union-attr]
    handler.addFilter(request_filter)
    logging.getLogger().addHandler(handler)
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL")
    if level:
        logging.getLogger().setLevel(level.upper())
    return request_filter


def _redirect_output(path: str) -> None:
    """Point fds 1 and 2 (so also child processes and C extensions) at `path`."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _load_handler(handler_string: str) -> Any:
    """Import "package.module.function" as the runtime does, with its named init errors."""
    module_name, _, function_name = handler_string.rpartition(".")
    if not module_name:
        raise _InitError("Runtime.MalformedHandlerName", f"Bad handler '{handler_string}': not enough values to unpack")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise _InitError("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}") from exc
    except Exception as exc:
        raise _InitError("Runtime.UserCodeSyntaxError" if isinstance(exc, SyntaxError) else type(exc).__name__, str(exc)) from exc
    handler = getattr(module, function_name, None)
    if handler is None:
        raise _InitError("Runtime.HandlerNotFound", f"Handler '{function_name}' missing on module '{module_name}'")
    return handler


class _InitError(Exception):
    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type


def _invoke(handler: Any, event: Any, context: LambdaContext) -> dict[str, Any]:
    """Run the handler; a result that is not JSON is the runtime's Runtime.MarshalError."""
    try:
        result = handler(event, context)
    except Exception as exc:
        return {"error": error_payload(exc)}
    try:
        return {"result": json.loads(json.dumps(result))}
    except (TypeError, ValueError) as exc:
        return {"error": {"errorMessage": f"Unable to marshal response: {exc}", "errorType": "Runtime.MarshalError", "stackTrace": []}}


def _disconnect_from_terminal_stdio() -> tuple[BinaryIO, BinaryIO]:
    """Move the protocol pipes (stdin/stdout at spawn) to private fds before user code runs."""
    requests = os.fdopen(os.dup(0), "rb", buffering=0)
    responses = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return requests, responses


def serve(handler_string: str, function_arn: str, init_log: str) -> None:
    requests, responses = _disconnect_from_terminal_stdio()
    sys.path.insert(0, os.getcwd())
    _redirect_output(init_log)
    request_filter = _configure_logging()
    init_error: dict[str, Any] | None = None
    try:
        handler = _load_handler(handler_string)
    except _InitError as exc:
        init_error = error_payload(exc, exc.error_type)
        print(f"[ERROR] {exc.error_type}: {exc}", file=sys.stderr)
    write_message(responses, {"ready": True, "pid": os.getpid(), "init_error": init_error})

    while (request := read_message(requests)) is not None:
        _redirect_output(request["log_path"])
        request_filter.request_id = request["request_id"]
        context = LambdaContext(request["request_id"], request["deadline_ms"], dict(os.environ), function_arn)
        if init_error is not None:
            write_message(responses, {"error": init_error})
            continue
        reply = _invoke(handler, request["event"], context)
        if "error" in reply:
            error = reply["error"]
            print(f"[ERROR] {error['errorType']}: {error['errorMessage']}", *error["stackTrace"], sep="\n", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        write_message(responses, reply)


if __name__ == "__main__":
    serve(handler_string=sys.argv[1], function_arn=sys.argv[2], init_log=sys.argv[3])
