"""Run moto's Lambda functions as local Python processes instead of Docker containers.

moto 5.2 runs Lambda code only in Docker, through `LambdaFunction._invoke_lambda(event)`;
`moto_seam.install_lambda_invoker` puts `ProcessLambdaRunner.invoke` there instead.

Like a Lambda execution environment: the deployment zip is extracted once per code version,
each function keeps warm worker processes (`lambda_pool`, running `lambda_worker`) reused across
invocations, more start on demand up to a bound, each sees only the function's environment,
Timeout is enforced by killing the worker, and logs go to CloudWatch Logs /aws/lambda/NAME.
"""
from __future__ import annotations

import io
import json
import math
import shutil
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from scones.local.emulator.lambda_pool import FunctionPool, Worker, WorkerStartFailed, WorkerTimedOut
from scones.local.emulator.lambda_spec import FunctionSpec, InvocationResult, LogSink, error_document
from scones.model.config import FAKE_CREDENTIALS

DEFAULT_MAX_WORKERS_PER_FUNCTION = 4


class FunctionCodeUnavailable(RuntimeError):
    """The function's deployment package is missing or not a zip archive."""


class ProcessLambdaRunner:
    """Invokes functions in warm local worker processes, the way AWS Lambda would."""

    def __init__(
        self,
        aws_endpoint_url: str,
        work_dir: Path,
        max_workers_per_function: int = DEFAULT_MAX_WORKERS_PER_FUNCTION,
    ):
        self.aws_endpoint_url = aws_endpoint_url
        self.work_dir = Path(work_dir)
        self.max_workers_per_function = max_workers_per_function
        self._pools: dict[str, tuple[str, FunctionPool]] = {}  # arn → (pool key, pool)
        self._lock = threading.Lock()
        self._log_lock = threading.Lock()
        self._scratch = self.work_dir / "invocations"
        self._scratch.mkdir(parents=True, exist_ok=True)

    def invoke(
        self, spec: FunctionSpec, code_zip: Callable[[], bytes], event: Any, log_sink: LogSink | None = None
    ) -> InvocationResult:
        """Run one invocation; `code_zip` is called only when the code version is new."""
        request_id = str(uuid.uuid4())
        pool = self._pool_for(spec)
        worker = pool.acquire()
        healthy = False
        try:
            if worker is not None and worker.process.poll() is not None:
                pool.release(worker, healthy=False)  # died while idle: replace it
                worker = pool.acquire()
            if worker is None:
                try:
                    worker = self._start_worker(spec, code_zip)
                except (FunctionCodeUnavailable, WorkerStartFailed) as exc:
                    return InvocationResult(error_document(request_id, type(exc).__name__, str(exc)), True, str(exc))
            result, healthy = self._run(worker, request_id, event, sink=log_sink)
            return result
        finally:
            pool.release(worker, healthy)

    def close(self) -> None:
        """Stop every worker (busy ones are stopped as they finish)."""
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for _, pool in pools:
            pool.retire()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def _pool_for(self, spec: FunctionSpec) -> FunctionPool:
        with self._lock:
            current = self._pools.get(spec.arn)
            if current and current[0] == spec.pool_key:
                return current[1]
            pool = FunctionPool(self.max_workers_per_function)
            self._pools[spec.arn] = (spec.pool_key, pool)
        if current:
            current[1].retire()  # new code or configuration: old environments go away, as on AWS
        return pool

    def _code_dir(self, spec: FunctionSpec, code_zip: Callable[[], bytes]) -> Path:
        """The deployment package, extracted once per code version."""
        target = self.work_dir / "code" / f"{spec.name}-{spec.code_sha256[:16] or 'empty'}"
        with self._lock:
            if target.is_dir():
                return target
            data = code_zip()
            if not data:
                raise FunctionCodeUnavailable(f"function {spec.name} has no deployment package")
            partial = target.with_name(target.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            try:
                with zipfile.ZipFile(io.BytesIO(data)) as archive:
                    archive.extractall(partial)  # extractall drops absolute paths and '..' parts
            except zipfile.BadZipFile as exc:
                raise FunctionCodeUnavailable(f"function {spec.name}: deployment package is not a zip: {exc}") from exc
            partial.rename(target)
            return target

    def _environment(self, spec: FunctionSpec, code_dir: Path, log_stream: str) -> dict[str, str]:
        """The function's environment only: nothing of this process's environment leaks in."""
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "LAMBDA_TASK_ROOT": str(code_dir),
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
                "AWS_LAMBDA_FUNCTION_TIMEOUT": str(int(spec.timeout_s)),
                "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group,
                "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
            }
        )
        return env

    def _start_worker(self, spec: FunctionSpec, code_zip: Callable[[], bytes]) -> Worker:
        code_dir = self._code_dir(spec, code_zip)
        now = datetime.now(timezone.utc)
        stream = f"{now:%Y/%m/%d}/[{spec.version}]{uuid.uuid4().hex}"
        return Worker(spec, code_dir, self._environment(spec, code_dir, stream), self._scratch, stream)

    def _run(self, worker: Worker, request_id: str, event: Any, sink: LogSink | None) -> tuple[InvocationResult, bool]:
        spec = worker.spec
        log_path = self._scratch / f"{request_id}.log"
        log_path.touch()
        started = time.monotonic()
        deadline_ms = int(time.time() * 1000 + spec.timeout_s * 1000)
        try:
            worker.send({"request_id": request_id, "event": event, "deadline_ms": deadline_ms, "log_path": str(log_path)})
            reply = worker.receive(started + spec.timeout_s)
            timed_out = False
        except BrokenPipeError:
            reply, timed_out = None, False
        except WorkerTimedOut:
            reply, timed_out = None, True
        duration_ms = (time.monotonic() - started) * 1000
        healthy = reply is not None
        if timed_out:
            payload = error_document(request_id, "Sandbox.Timedout", f"Task timed out after {spec.timeout_s:.2f} seconds")
            errored, tail = True, [json.loads(payload)["errorMessage"]]
        elif reply is None:
            worker.process.wait()
            status = worker.process.returncode
            payload = error_document(request_id, "Runtime.ExitError", f"Runtime exited with error: exit status {status}")
            errored, tail = True, [json.loads(payload)["errorMessage"]]
        elif "error" in reply:
            payload, errored, tail = json.dumps(reply["error"]), True, []
        else:
            payload, errored, tail = json.dumps(reply["result"]), False, []
        memory_mb = worker.max_memory_mb()
        if not healthy:
            worker.kill()
        output = log_path.read_text(errors="replace").splitlines()
        log_path.unlink(missing_ok=True)
        lines = self._log_lines(worker, request_id, output + tail, duration_ms, memory_mb)
        if sink is not None:
            with self._log_lock:
                sink(spec, worker.log_stream, lines)
        return InvocationResult(payload, errored, "\n".join(lines)), healthy

    @staticmethod
    def _log_lines(worker: Worker, request_id: str, output: list[str], duration_ms: float, memory_mb: int) -> list[str]:
        spec = worker.spec
        cold = worker.invocations == 0
        worker.invocations += 1
        lines = [f"INIT_START Runtime Version: {spec.runtime} (scones process runner)", *worker.init_lines] if cold else []
        report = (
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\tBilled Duration: {math.ceil(duration_ms)} ms"
            f"\tMemory Size: {spec.memory_mb} MB\tMax Memory Used: {memory_mb} MB"
        )
        if cold:
            report += f"\tInit Duration: {worker.init_duration_ms:.2f} ms"
        return [*lines, f"START RequestId: {request_id} Version: {spec.version}", *output, f"END RequestId: {request_id}", report]
