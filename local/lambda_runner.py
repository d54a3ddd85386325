"""Run moto's Lambda functions as local Python processes instead of Docker containers.

moto 5.2 runs Lambda code only in Docker, through `LambdaFunction._invoke_lambda(event)`,
which returns `(payload, errored, logs)`: `invoke` turns `errored` into the
`X-Amz-Function-Error` header, and moto's Step Functions interpreter then reads the payload's
`errorType` as the error name that `Catch`/`Retry` match. Replacing that one method with
`ProcessLambdaRunner` is the whole integration; this is the only module that touches moto's
internals (tests/unit/test_moto_seam.py fails loudly if that seam moves).

Like a Lambda execution environment: the deployment zip is extracted once per code version,
each function keeps warm worker processes (scones.local.lambda_worker) reused across
invocations, more start on demand up to a bound, each sees only the function's environment,
Timeout is enforced by killing the worker, and logs go to CloudWatch Logs /aws/lambda/NAME.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import select
import shutil
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import lambda_worker

WORKER_SCRIPT = Path(lambda_worker.__file__).resolve()
INIT_TIMEOUT_S = 10.0  # AWS gives the init phase 10 s on top of nothing; slow imports fail here
DEFAULT_MAX_WORKERS_PER_FUNCTION = 4
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


class FunctionCodeUnavailable(RuntimeError):
    """The function's deployment package is missing or not a zip archive."""


class WorkerStartFailed(RuntimeError):
    """A worker process died or hung before its handler was imported."""


class _TimedOut(Exception):
    """No message from the worker before the deadline."""


@dataclass(frozen=True)
class FunctionSpec:
    """What the runner needs to know about one function version (independent of moto)."""

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

    @property
    def log_group(self) -> str:
        return f"/aws/lambda/{self.name}"

    @property
    def pool_key(self) -> str:
        """Workers are reusable only while code and configuration are unchanged."""
        config = json.dumps(
            [self.handler, self.timeout_s, self.memory_mb, self.code_sha256, sorted(self.environment.items())]
        )
        return hashlib.sha256(config.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class InvocationResult:
    payload: str  # JSON text: the handler's result, or the error document
    errored: bool  # a function error (moto sets X-Amz-Function-Error)
    logs: str  # this invocation's log lines (the LogType=Tail result)


LogSink = Callable[[FunctionSpec, str, list[str]], None]  # (function, stream name, lines)


def _error_document(request_id: str, error_type: str, message: str) -> str:
    return json.dumps({"errorMessage": f"RequestId: {request_id} Error: {message}", "errorType": error_type})


class _Worker:
    """One warm execution environment: a lambda_worker process and its pipes."""

    def __init__(self, spec: FunctionSpec, code_dir: Path, env: dict[str, str], scratch: Path, stream: str):
        self.spec = spec
        self.log_stream = stream
        self.init_log = scratch / f"init-{uuid.uuid4().hex}.log"
        started = time.monotonic()
        with open(self.init_log, "wb") as init_output:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-u", str(WORKER_SCRIPT), spec.handler, spec.arn, str(self.init_log)],
                cwd=code_dir,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=init_output,
            )
        self.invocations = 0
        try:
            ready = self.receive(started + INIT_TIMEOUT_S)
        except _TimedOut:
            ready = None
        self.init_duration_ms = (time.monotonic() - started) * 1000
        self.init_lines = self.init_log.read_text(errors="replace").splitlines()
        self.init_log.unlink(missing_ok=True)
        if ready is None:
            self.kill()
            raise WorkerStartFailed(f"{spec.name}: the runtime did not start in {INIT_TIMEOUT_S:.0f} s: {self.init_lines[-5:]}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, message: dict[str, Any]) -> None:
        lambda_worker.write_message(self.process.stdin, message)  # type: ignore[arg-type]

    def receive(self, deadline: float) -> dict[str, Any] | None:
        """The worker's next message; None if the process has died; _TimedOut after `deadline`."""
        remaining = deadline - time.monotonic()
        readable, _, _ = select.select([self.process.stdout], [], [], max(0.0, remaining))
        if not readable:
            raise _TimedOut
        return lambda_worker.read_message(self.process.stdout)  # type: ignore[arg-type]

    def max_memory_mb(self) -> int:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return math.ceil(int(line.split()[1]) / 1024)
        except OSError:
            pass
        return 0

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe:
                pipe.close()


class _FunctionPool:
    """Warm workers of one function version; bounded, grown on demand."""

    def __init__(self, max_workers: int):
        self.max_workers = max_workers
        self.idle: list[_Worker] = []
        self.size = 0
        self.retired = False
        self.available = threading.Condition()

    def acquire(self) -> _Worker | None:
        """An idle worker, or None when the caller may start a new one (a slot is reserved)."""
        with self.available:
            while not self.idle and self.size >= self.max_workers:
                self.available.wait()
            if self.idle:
                return self.idle.pop()
            self.size += 1
            return None

    def release(self, worker: _Worker | None, healthy: bool) -> None:
        with self.available:
            if worker is not None and healthy and not self.retired:
                self.idle.append(worker)
            else:
                self.size -= 1
                if worker is not None:
                    worker.kill()
            self.available.notify()

    def retire(self) -> None:
        with self.available:
            self.retired = True
            idle, self.idle = self.idle, []
            self.size -= len(idle)
        for worker in idle:
            worker.kill()


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
        self._pools: dict[str, tuple[str, _FunctionPool]] = {}  # arn → (pool key, pool)
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
                    return InvocationResult(_error_document(request_id, type(exc).__name__, str(exc)), True, str(exc))
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

    def _pool_for(self, spec: FunctionSpec) -> _FunctionPool:
        with self._lock:
            current = self._pools.get(spec.arn)
            if current and current[0] == spec.pool_key:
                return current[1]
            pool = _FunctionPool(self.max_workers_per_function)
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

    def _start_worker(self, spec: FunctionSpec, code_zip: Callable[[], bytes]) -> _Worker:
        code_dir = self._code_dir(spec, code_zip)
        now = datetime.now(timezone.utc)
        stream = f"{now:%Y/%m/%d}/[{spec.version}]{uuid.uuid4().hex}"
        return _Worker(spec, code_dir, self._environment(spec, code_dir, stream), self._scratch, stream)

    def _run(self, worker: _Worker, request_id: str, event: Any, sink: LogSink | None) -> tuple[InvocationResult, bool]:
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
        except _TimedOut:
            reply, timed_out = None, True
        duration_ms = (time.monotonic() - started) * 1000
        healthy = reply is not None
        if timed_out:
            payload = _error_document(request_id, "Sandbox.Timedout", f"Task timed out after {spec.timeout_s:.2f} seconds")
            errored, tail = True, [json.loads(payload)["errorMessage"]]
        elif reply is None:
            worker.process.wait()
            status = worker.process.returncode
            payload = _error_document(request_id, "Runtime.ExitError", f"Runtime exited with error: exit status {status}")
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
    def _log_lines(worker: _Worker, request_id: str, output: list[str], duration_ms: float, memory_mb: int) -> list[str]:
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


# --- the seam: moto.awslambda.models.LambdaFunction._invoke_lambda ----------------------------

_installed: ProcessLambdaRunner | None = None


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
        raise RuntimeError("scones.local.lambda_runner: no ProcessLambdaRunner installed")
    if isinstance(event, str | bytes):
        event = json.loads(event or "{}")  # moto passes the text "{}" for an empty payload
    result = _installed.invoke(
        function_spec(self), lambda: self.code_bytes, {} if event is None else event, log_sink=_moto_log_sink(self)
    )
    return result.payload, result.errored, result.logs


def install(runner: ProcessLambdaRunner) -> Callable[[], None]:
    """Put `runner` behind moto's Lambda invoke; returns a function that restores moto's own."""
    global _installed
    from moto.awslambda.models import LambdaFunction

    original = LambdaFunction.__dict__["_invoke_lambda"]
    _installed = runner
    LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign]

    def uninstall() -> None:
        global _installed
        LambdaFunction._invoke_lambda = original  # type: ignore[method-assign]
        _installed = None

    return uninstall
