"""One Lambda function version as the emulator sees it, and what an invocation returns.

Independent of moto: the seam (`moto_seam.py`) builds a FunctionSpec from moto's
LambdaFunction, and the runner never sees moto's objects.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FunctionSpec:
    """What the runner needs to know about one function version."""

    name: str
    arn: str
    handler: str
    runtime: str
    version: str
    timeout_s: float
    memory_mb: int
    region: str
    code_sha256: str
    environment: dict[str, str] = field(default_factory=dict)
    ephemeral_storage_mb: int = 512  # EphemeralStorage.Size: the size of the environment's /tmp
    layers: tuple[str, ...] = ()  # layer version ARNs, in the order AWS extracts them into /opt
    reserved_concurrency: int | None = None  # ReservedConcurrentExecutions: invocations beyond it are throttled

    @property
    def log_group(self) -> str:
        return f"/aws/lambda/{self.name}"

    @property
    def pool_key(self) -> str:
        """Workers are reusable only while code and configuration are unchanged."""
        config = json.dumps(
            [self.handler, self.timeout_s, self.memory_mb, self.code_sha256, sorted(self.environment.items()), self.ephemeral_storage_mb, self.layers]
        )
        return hashlib.sha256(config.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class InvocationResult:
    payload: str  # JSON text: the handler's result, or the error document
    errored: bool  # a function error (moto sets X-Amz-Function-Error)
    logs: str  # this invocation's log lines (the LogType=Tail result)


LogSink = Callable[[FunctionSpec, str, list[str]], None]  # (function, stream name, lines)


def error_document(request_id: str, error_type: str, message: str) -> str:
    """An error payload shaped as AWS's runtime reports its own errors."""
    return json.dumps({"errorMessage": f"RequestId: {request_id} Error: {message}", "errorType": error_type})
