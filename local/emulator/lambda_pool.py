"""Warm execution environments: one worker process per environment, pooled per function version."""
from __future__ import annotations

import math
import select
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from scones.local.emulator import lambda_worker
from scones.local.emulator.lambda_spec import FunctionSpec

WORKER_SCRIPT = Path(lambda_worker.__file__).resolve()
INIT_TIMEOUT_S = 10.0  # AWS gives the init phase 10 s on top of nothing; slow imports fail here


class WorkerStartFailed(RuntimeError):
    """A worker process died or hung before its handler was imported."""


class WorkerTimedOut(Exception):
    """No message from the worker before the deadline."""


class Worker:
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
        except WorkerTimedOut:
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
        assert self.process.stdin is not None  # Popen(stdin=PIPE)
        lambda_worker.write_message(self.process.stdin, message)

    def receive(self, deadline: float) -> dict[str, Any] | None:
        """The worker's next message; None if the process has died; WorkerTimedOut after `deadline`."""
        remaining = deadline - time.monotonic()
        assert self.process.stdout is not None  # Popen(stdout=PIPE)
        readable, _, _ = select.select([self.process.stdout], [], [], max(0.0, remaining))
        if not readable:
            raise WorkerTimedOut
        return lambda_worker.read_message(self.process.stdout)

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


class FunctionPool:
    """Warm workers of one function version; bounded, grown on demand."""

    def __init__(self, max_workers: int):
        self.max_workers = max_workers
        self.idle: list[Worker] = []
        self.size = 0
        self.retired = False
        self.available = threading.Condition()

    def acquire(self) -> Worker | None:
        """An idle worker, or None when the caller may start a new one (a slot is reserved)."""
        with self.available:
            while not self.idle and self.size >= self.max_workers:
                self.available.wait()
            if self.idle:
                return self.idle.pop()
            self.size += 1
            return None

    def release(self, worker: Worker | None, healthy: bool) -> None:
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
