"""Warm execution environments: one runtime process (awslambdaric) per environment, pooled per function version."""
from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from scones.local.emulator import lambda_sandbox
from scones.local.emulator.lambda_runtime_api import Outcome, RuntimeApi
from scones.local.emulator.lambda_spec import FunctionSpec
from scones.local.emulator.lambda_zygote import EnvironmentLauncher

INIT_TIMEOUT_S = 10.0  # AWS's init phase limit: slow imports fail here
MAX_OUTPUT_BYTES = 1 << 20  # the environment's output file is truncated once read past this


class WorkerStartFailed(RuntimeError):
    """A runtime process died or hung before it asked for its first invocation."""

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type


class InvocationThrottled(RuntimeError):
    """More concurrent invocations than the function may have (Lambda's TooManyRequestsException, 429)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def exit_description(status: int) -> str:
    """A runtime's end as AWS words it after "Runtime exited": "with error: signal: killed", "with error: exit status 1"."""
    if status == 0:
        return "without providing a reason"
    if status < 0:
        name = _SIGNAL_WORDS.get(-status) or signal.Signals(-status).name.lower()
        return f"with error: signal: {name}"
    return f"with error: exit status {status}"


_SIGNAL_WORDS: dict[int, str] = {signal.SIGKILL: "killed", signal.SIGTERM: "terminated", signal.SIGSEGV: "segmentation fault", signal.SIGABRT: "aborted"}


@dataclass(frozen=True)
class EnvironmentPaths:
    """Host directories an environment is made of: code (/var/task), layers (/opt), runtime venv, scratch."""

    code: Path
    opt: Path
    runtime: Path
    scratch: Path


class Worker:
    """One execution environment: its runtime process, its Runtime API and its private directory."""

    def __init__(self, spec: FunctionSpec, paths: EnvironmentPaths, env: dict[str, str], stream: str, launcher: EnvironmentLauncher):
        self.spec = spec
        self.log_stream = stream
        self.invocations = 0
        self.dir = Path(tempfile.mkdtemp(prefix="env-", dir=paths.scratch))
        self.api = RuntimeApi()
        launch = lambda_sandbox.launch(paths.runtime, paths.code, paths.opt, self.dir, spec.handler, spec.ephemeral_storage_mb)
        env = {**env, "AWS_LAMBDA_RUNTIME_API": self.api.address, **launch.env}
        self._output_path, self._output_offset = self.dir / "output.log", 0
        started = time.monotonic()
        self.process = launcher.start(launch, paths.code, paths.opt, env, self._output_path)
        threading.Thread(target=self._watch, name=f"lambda-env-{self.process.pid}", daemon=True).start()
        ready = self.api.wait_ready(started + INIT_TIMEOUT_S)
        self.init_duration_ms = (time.monotonic() - started) * 1000
        self.init_lines = self.take_output()
        if not ready or (self.api.exit_status is not None and self.api.init_error is None):
            status = self.api.exit_status
            self.kill()
            if status is None:
                raise WorkerStartFailed("Sandbox.Timedout", f"Init phase timed out after {INIT_TIMEOUT_S:.2f} seconds")
            raise WorkerStartFailed("Runtime.ExitError", f"Runtime exited {exit_description(status)}")

    @property
    def init_error(self) -> Outcome | None:
        return self.api.init_error

    def alive(self) -> bool:
        return self.api.exit_status is None and self.process.poll() is None

    def _watch(self) -> None:
        self.api.exited(self.process.wait())

    def take_output(self) -> list[str]:
        """What the environment wrote since the last call; "\\r"-joined lines stay one event, as on AWS."""
        try:
            with open(self._output_path, "rb") as output:
                output.seek(self._output_offset)
                data = output.read()
        except OSError:
            return []
        self._output_offset += len(data)
        if self._output_offset > MAX_OUTPUT_BYTES:
            os.truncate(self._output_path, 0)
            self._output_offset = 0
        return data.decode("utf-8", errors="replace").split("\n")[:-1] if data else []

    def max_memory_mb(self) -> int:
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return math.ceil(int(line.split()[1]) / 1024)
        except OSError:
            pass
        return 0

    def kill(self) -> None:
        """End the environment: its processes, its /tmp (the namespace's tmpfs), its API and directory."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.api.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class FunctionPool:
    """Warm workers of one function version; bounded, grown on demand, with a bounded queue."""

    def __init__(self, max_workers: int, max_queued: int):
        self.max_workers = max_workers
        self.max_queued = max_queued
        self.idle: list[Worker] = []
        self.size = 0
        self.in_flight = 0
        self.queued = 0
        self.retired = False
        self.available = threading.Condition()

    def acquire(self, reserved_concurrency: int | None = None) -> Worker | None:
        """An idle worker, or None when the caller may start a new one (a slot is reserved).

        Raises InvocationThrottled past the function's reserved concurrency (as AWS does) or when the
        queue of invocations waiting for a worker is full."""
        with self.available:
            if reserved_concurrency is not None and self.in_flight >= reserved_concurrency:
                raise InvocationThrottled(
                    "ReservedFunctionConcurrentInvocationLimitExceeded", "Rate Exceeded."
                )  # fmt: skip
            if not self.idle and self.size >= self.max_workers and self.queued >= self.max_queued:
                raise InvocationThrottled("ConcurrentInvocationLimitExceeded", "Rate Exceeded.")
            self.in_flight += 1
            self.queued += 1
            while not self.idle and self.size >= self.max_workers:
                self.available.wait()
            self.queued -= 1
            if self.idle:
                return self.idle.pop()
            self.size += 1
            return None

    def release(self, worker: Worker | None, healthy: bool) -> None:
        with self.available:
            self.in_flight -= 1
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
