"""MiniStack for the comparison in bench/workflow.py: a side virtual environment, never a project dependency.

The venv is cached under the temp dir by version; MiniStack runs its Python Lambdas with its own
interpreter, so boto3 (which the Lambda Python runtime provides on AWS) is installed beside it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scones.local.stacks.embedded import HOST, free_port, http_answers, log_tail, spawn, wait_ready
from scones.model.config import FAKE_CREDENTIALS

MINISTACK_VERSION = "1.5.33"  # the release the issue measured


def side_venv(version: str = MINISTACK_VERSION) -> Path:
    """A virtual environment with ministack==version and boto3, created on first use."""
    venv = Path(tempfile.gettempdir()) / f"scones-bench-ministack-{version}"
    marker = venv / ".installed"
    if not marker.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"ministack=={version}", "boto3"],
                       check=True)  # fmt: skip
        marker.touch()
    return venv


@contextmanager
def running_ministack(log_path: Path) -> Iterator[str]:
    """MiniStack on a free 127.0.0.1 port for the duration; yields its endpoint URL."""
    venv = side_venv()
    port = free_port()
    url = f"http://{HOST}:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"GATEWAY_PORT": str(port), "BIND_HOST": HOST, "MINISTACK_HOST": HOST, **FAKE_CREDENTIALS,
                "AWS_DEFAULT_REGION": "us-east-1", "PYTHONUNBUFFERED": "1"})  # fmt: skip
    process = spawn([str(venv / "bin" / "ministack")], log_path, env)
    try:
        wait_ready("MiniStack", process, log_path, lambda: http_answers(f"{url}/_ministack/health"), 60)
        yield url
    except Exception:
        print(log_tail(log_path), file=sys.stderr)
        raise
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # its own session: MiniStack and its Lambda workers
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
