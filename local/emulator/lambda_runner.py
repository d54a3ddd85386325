"""Run moto's Lambda functions as local execution environments instead of Docker containers.

moto 5.2 runs Lambda code only in Docker, through `LambdaFunction._invoke_lambda(event)`;
`moto_seam.install_lambda_invoker` puts `ProcessLambdaRunner.invoke` there instead.

Like AWS Lambda: the deployment zip is extracted once per code version; each function keeps warm
execution environments (`lambda_pool`) reused across invocations, more start on demand up to a
bound; each runs AWS's runtime interface client (`awslambdaric`) in the runtime's own interpreter
(forked from one that has imported boto3 where the function can't tell: `lambda_zygote`)
and a private /tmp (`lambda_sandbox`) against a Runtime API served here (`lambda_runtime_api`),
with only the function's environment. Timeout is enforced by killing the environment; a dead one
ends its invocation with Runtime.ExitError and is replaced; logs go to CloudWatch Logs
/aws/lambda/NAME.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import os
import shutil
import threading
import time
import uuid
import weakref
import zipfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from scones.local.emulator import lambda_sandbox
from scones.local.emulator.lambda_pool import EnvironmentPaths, FunctionPool, Worker, WorkerStartFailed, exit_description
from scones.local.emulator.lambda_runtime_api import MAX_RESPONSE_BYTES, Outcome
from scones.local.emulator.lambda_spec import FunctionSpec, InvocationResult, LogSink, error_document
from scones.local.emulator.lambda_zygote import EnvironmentLauncher
from scones.model.config import FAKE_CREDENTIALS

# One environment per core (2 to 8): on a CPU-bound machine more environments than cores add only
# cold starts (each builds its clients, ~0.25 s of CPU; without the zygote it also imports boto3, as
# much again) and contention. On 2 cores, three alternating runs: a burst of 50 cold executions ran at 15-23/s with 2 per function, 9-15/s with 4.
DEFAULT_MAX_WORKERS_PER_FUNCTION = min(8, max(2, os.cpu_count() or 2))
# Invocations beyond the warm environments wait for one, up to this many per function, then get
# TooManyRequestsException: AWS would start more environments (up to the account's 1,000), which
# one machine cannot; waiting gives the result AWS would, and the bound keeps a flood finite.
DEFAULT_MAX_QUEUED_PER_FUNCTION = 100
MAX_START_ATTEMPTS = 3  # an environment that dies before taking the invocation is replaced this often
# What every environment's variables start from (AWS's Python runtime's values); the function's own
# variables may change them.
BASE_ENVIRONMENT = {
    "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
    "LD_LIBRARY_PATH": "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
    "LANG": "en_US.UTF-8",
    "TZ": ":UTC",
}


class FunctionCodeUnavailable(RuntimeError):
    """The function's deployment package is missing or not a zip archive."""


class ProcessLambdaRunner:
    """Invokes functions in warm local execution environments, the way AWS Lambda would."""

    def __init__(
        self,
        aws_endpoint_url: str,
        work_dir: Path,
        max_workers_per_function: int = DEFAULT_MAX_WORKERS_PER_FUNCTION,
        max_queued_per_function: int = DEFAULT_MAX_QUEUED_PER_FUNCTION,
        runtime_dir: Path | None = None,
        zygote: bool = True,
    ):
        self.aws_endpoint_url = aws_endpoint_url
        self.work_dir = Path(work_dir)
        self.max_workers_per_function = max_workers_per_function
        self.max_queued_per_function = max_queued_per_function
        self.runtime_dir = runtime_dir or lambda_sandbox.ensure_runtime()
        self._pools: dict[str, tuple[str, FunctionPool]] = {}  # arn → (pool key, pool)
        self._lock = threading.Lock()
        self._log_lock = threading.Lock()
        self._environments: weakref.WeakSet[Worker] = weakref.WeakSet()
        self._scratch = self.work_dir / "environments"
        self._scratch.mkdir(parents=True, exist_ok=True)
        self.launcher = EnvironmentLauncher(self.runtime_dir, BASE_ENVIRONMENT, self._scratch, use_zygote=zygote)

    def invoke(
        self,
        spec: FunctionSpec,
        code_zip: Callable[[], bytes],
        event: Any,
        log_sink: LogSink | None = None,
        layer_zip: Callable[[str], bytes] | None = None,
    ) -> InvocationResult:
        """Run one invocation; `code_zip` (and `layer_zip(arn)` for each of spec.layers) is called
        only when the code version is new.

        Raises InvocationThrottled (TooManyRequestsException) only; every other failure is a result."""
        request_id = str(uuid.uuid4())
        pool = self._pool_for(spec)
        worker = pool.acquire(spec.reserved_concurrency)
        healthy = False
        try:
            body = json.dumps(event).encode()
            for _ in range(MAX_START_ATTEMPTS):
                if worker is not None and not worker.alive():
                    worker.kill()  # died while idle: replace it in the same slot
                    worker = None
                if worker is None:
                    worker = self._start_worker(spec, code_zip, layer_zip)
                result, healthy = self._run(worker, request_id, body, log_sink)
                if result is not None:
                    return result
            return _failure(request_id, "Runtime.ExitError", "Runtime exited before it took the invocation")
        except (FunctionCodeUnavailable, WorkerStartFailed) as exc:
            return _failure(request_id, getattr(exc, "error_type", type(exc).__name__), str(exc))
        except Exception as exc:  # never into moto's request handling: AWS answers with an error document
            return _failure(request_id, "Runtime.Unknown", f"{type(exc).__name__}: {exc}")
        finally:
            pool.release(worker, healthy)

    def close(self) -> None:
        """Stop every environment, busy ones too (their invocations end with Runtime.ExitError):
        they run in sessions of their own, so stopping this process's group would not reach them."""
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
            environments = list(self._environments)
        for _, pool in pools:
            pool.retire()
        for environment in environments:
            environment.kill()
        self.launcher.close()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def _pool_for(self, spec: FunctionSpec) -> FunctionPool:
        with self._lock:
            current = self._pools.get(spec.arn)
            if current and current[0] == spec.pool_key:
                return current[1]
            pool = FunctionPool(self.max_workers_per_function, self.max_queued_per_function)
            self._pools[spec.arn] = (spec.pool_key, pool)
        if current:
            current[1].retire()  # new code or configuration: old environments go away, as on AWS
        return pool

    def _code_dir(self, spec: FunctionSpec, code_zip: Callable[[], bytes]) -> Path:
        """The deployment package, extracted once per code version."""
        target = self.work_dir / "code" / f"{spec.name}-{spec.code_sha256[:16] or 'empty'}"
        return self._extract(target, f"function {spec.name}", [("deployment package", code_zip)])

    def _opt_dir(self, spec: FunctionSpec, layer_zip: Callable[[str], bytes] | None) -> Path:
        """What the function sees as /opt: its layers extracted in order (later ones win), as AWS does."""
        if spec.layers and layer_zip is None:
            raise FunctionCodeUnavailable(f"function {spec.name} has layers but the invoker gave no way to read them")
        key = hashlib.sha256("\n".join(spec.layers).encode()).hexdigest()[:16]
        sources: list[tuple[str, Callable[[], bytes]]] = [
            (f"layer {arn}", functools.partial(layer_zip, arn)) for arn in spec.layers if layer_zip
        ]
        return self._extract(self.work_dir / "opt" / key, f"function {spec.name}", sources)

    def _extract(self, target: Path, owner: str, sources: list[tuple[str, Callable[[], bytes]]]) -> Path:
        with self._lock:
            if target.is_dir():
                return target
            partial = target.with_name(target.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            for what, read in sources:
                data = read()
                if not data:
                    raise FunctionCodeUnavailable(f"{owner} has no {what}")
                try:
                    with zipfile.ZipFile(io.BytesIO(data)) as archive:
                        archive.extractall(partial)  # extractall drops absolute paths and '..' parts
                except zipfile.BadZipFile as exc:
                    raise FunctionCodeUnavailable(f"{owner}: {what} is not a zip: {exc}") from exc
            partial.rename(target)
            return target

    def _environment(self, spec: FunctionSpec, log_stream: str) -> dict[str, str]:
        """The function's environment only (AWS's defined variables): nothing of this process's leaks in."""
        env = {
            **BASE_ENVIRONMENT,
            "AWS_ENDPOINT_URL": self.aws_endpoint_url,
            "AWS_DEFAULT_REGION": spec.region,
        }
        env.update({k: str(v) for k, v in spec.environment.items()})
        env.update(FAKE_CREDENTIALS)
        env.update(
            {
                "_HANDLER": spec.handler,
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
                "AWS_REGION": spec.region,
                "AWS_LAMBDA_FUNCTION_NAME": spec.name,
                "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group,
                "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
                "LAMBDA_RUNTIME_DIR": "/var/runtime",
            }
        )
        return env

    def _start_worker(self, spec: FunctionSpec, code_zip: Callable[[], bytes], layer_zip: Callable[[str], bytes] | None) -> Worker:
        paths = EnvironmentPaths(self._code_dir(spec, code_zip), self._opt_dir(spec, layer_zip), self.runtime_dir, self._scratch)
        now = datetime.now(timezone.utc)
        stream = f"{now:%Y/%m/%d}/[{spec.version}]{uuid.uuid4().hex}"
        worker = Worker(spec, paths, self._environment(spec, stream), stream, self.launcher)
        with self._lock:
            self._environments.add(worker)
        return worker

    def _run(self, worker: Worker, request_id: str, body: bytes, sink: LogSink | None) -> tuple[InvocationResult | None, bool]:
        """(result, environment reusable?); result None when the environment died before taking the invocation."""
        spec = worker.spec
        started = time.monotonic()
        deadline_ms = int(time.time() * 1000 + spec.timeout_s * 1000)
        headers = {"Lambda-Runtime-Deadline-Ms": str(deadline_ms), "Lambda-Runtime-Invoked-Function-Arn": spec.arn}
        outcome = worker.init_error or worker.api.invoke(request_id, body, headers, started + spec.timeout_s)
        if outcome.kind == "exited" and not outcome.picked_up:
            worker.kill()
            return None, False
        duration_ms = (time.monotonic() - started) * 1000
        payload, errored, healthy = _interpret(outcome, worker, request_id)
        memory_mb = worker.max_memory_mb()
        if not healthy:
            worker.kill()
        tail = [json.loads(payload)["errorMessage"]] if errored and outcome.kind in ("timeout", "exited") else []
        lines = self._log_lines(worker, request_id, worker.take_output() + tail, duration_ms, memory_mb)
        if sink is not None:
            with self._log_lock:
                sink(spec, worker.log_stream, lines)
        return InvocationResult(payload, errored, "\n".join(lines)), healthy

    @staticmethod
    def _log_lines(worker: Worker, request_id: str, output: list[str], duration_ms: float, memory_mb: int) -> list[str]:
        spec = worker.spec
        cold = worker.invocations == 0
        worker.invocations += 1
        lines = [f"INIT_START Runtime Version: {spec.runtime} (scones, awslambdaric)", *worker.init_lines] if cold else []
        report = (
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\tBilled Duration: {math.ceil(duration_ms)} ms"
            f"\tMemory Size: {spec.memory_mb} MB\tMax Memory Used: {memory_mb} MB"
        )
        if cold:
            report += f"\tInit Duration: {worker.init_duration_ms:.2f} ms"
        return [*lines, f"START RequestId: {request_id} Version: {spec.version}", *output, f"END RequestId: {request_id}", report]


def _interpret(outcome: Outcome, worker: Worker, request_id: str) -> tuple[str, bool, bool]:
    """(payload, function error?, environment reusable?) as AWS's Invoke reports each ending."""
    if outcome.kind == "response":
        return outcome.body.decode("utf-8", errors="replace"), False, True
    if outcome.kind in ("error", "init_error"):
        return outcome.body.decode("utf-8", errors="replace"), True, outcome.kind == "error"
    if outcome.kind == "too_large":
        message = f"Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."
        return json.dumps({"errorMessage": message, "errorType": "Function.ResponseSizeTooLarge"}), True, False
    if outcome.kind == "timeout":
        return error_document(request_id, "Sandbox.Timedout", f"Task timed out after {worker.spec.timeout_s:.2f} seconds"), True, False
    status = worker.api.exit_status if worker.api.exit_status is not None else -9
    return error_document(request_id, "Runtime.ExitError", f"Runtime exited {exit_description(status)}"), True, False


def _failure(request_id: str, error_type: str, message: str) -> InvocationResult:
    return InvocationResult(error_document(request_id, error_type, message), True, message)
