"""ProcessLambdaRunner.invoke called in-process (as moto's Step Functions will call it): real
awslambdaric processes against our Runtime API, no moto in between."""
from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from scones.local.emulator import lambda_sandbox
from scones.local.emulator.lambda_runner import ProcessLambdaRunner
from scones.local.emulator.lambda_spec import FunctionSpec

pytestmark = pytest.mark.integration

SOURCE = '''
import os, sys, tempfile, time

def exits(event, context):
    os._exit(event["status"])

def big(event, context):
    return "x" * (7 * 1024 * 1024)

def tmp(event, context):
    path = os.path.join(tempfile.gettempdir(), "image.png")
    with open(path, "w") as f:
        f.write(event["marker"])
    time.sleep(0.2)
    with open(path) as f:
        return {"read": f.read(), "tmpdir": tempfile.gettempdir(), "cwd": os.getcwd(), "task_root": os.environ["LAMBDA_TASK_ROOT"]}

def sleep(event, context):
    time.sleep(event["seconds"])
    return "woke"

def echo(event, context):
    return {"event": event, "arn": context.invoked_function_arn, "request_id": context.aws_request_id}
'''
SLOW_INIT = "import time\ntime.sleep(60)\n\ndef handler(event, context):\n    return 1\n"


def _zip() -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fn.py", SOURCE)
        zf.writestr("slow.py", SLOW_INIT)
    return archive.getvalue()


CODE = _zip()


def spec(handler: str, timeout_s: float = 5) -> FunctionSpec:
    name = handler.replace(".", "-")
    return FunctionSpec(
        name=name, arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}", handler=handler, runtime="python3.11",
        version="$LATEST", timeout_s=timeout_s, memory_mb=128, region="us-east-1", code_sha256="test-" + handler,
    )  # fmt: skip


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[ProcessLambdaRunner]:
    runner = ProcessLambdaRunner("http://127.0.0.1:9", tmp_path, max_workers_per_function=4)  # tests run 4 at once
    yield runner
    runner.close()


def test_context_comes_from_the_runtime_api_headers(runner):
    result = runner.invoke(spec("fn.echo"), lambda: CODE, "a string")
    payload = json.loads(result.payload)
    assert not result.errored
    assert payload["event"] == "a string"
    assert payload["arn"] == spec("fn.echo").arn and payload["request_id"]


@pytest.mark.parametrize(("status", "message"), [(0, "Runtime exited without providing a reason"), (3, "Runtime exited with error: exit status 3")])
def test_a_runtime_that_exits_is_runtime_exit_error_and_is_replaced(runner, status, message):
    result = runner.invoke(spec("fn.exits"), lambda: CODE, {"status": status})
    payload = json.loads(result.payload)
    assert result.errored and payload["errorType"] == "Runtime.ExitError"
    assert payload["errorMessage"].endswith(f"Error: {message}")
    assert not runner.invoke(spec("fn.echo"), lambda: CODE, {}).errored


def test_a_response_over_6_mb_is_function_response_size_too_large(runner):
    result = runner.invoke(spec("fn.big"), lambda: CODE, {})
    payload = json.loads(result.payload)
    assert result.errored and payload["errorType"] == "Function.ResponseSizeTooLarge"


def test_an_init_that_hangs_ends_within_the_init_limit(runner, monkeypatch):
    from scones.local.emulator import lambda_pool

    monkeypatch.setattr(lambda_pool, "INIT_TIMEOUT_S", 1.0)
    result = runner.invoke(spec("slow.handler"), lambda: CODE, {})
    assert result.errored and json.loads(result.payload)["errorType"] == "Sandbox.Timedout"


def test_without_mount_namespaces_each_environment_gets_its_own_tmpdir(runner, monkeypatch):
    """The fallback where unshare is not allowed: TMPDIR is private, the code dir is the host's."""
    monkeypatch.setattr(lambda_sandbox, "namespaces_available", lambda: False)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda m: runner.invoke(spec("fn.tmp"), lambda: CODE, {"marker": m}), ["a", "b", "c", "d"]))
    payloads = [json.loads(r.payload) for r in results]
    assert [p["read"] for p in payloads] == ["a", "b", "c", "d"]
    assert len({p["tmpdir"] for p in payloads}) == 4
    assert payloads[0]["cwd"] == payloads[0]["task_root"] != "/var/task"


def test_close_ends_busy_environments_too(tmp_path):
    import time
    from concurrent.futures import ThreadPoolExecutor

    runner = ProcessLambdaRunner("http://127.0.0.1:9", tmp_path)
    with ThreadPoolExecutor(1) as pool:
        busy = pool.submit(runner.invoke, spec("fn.sleep", timeout_s=30), lambda: CODE, {"seconds": 20})
        time.sleep(1.0)
        started = time.monotonic()
        runner.close()
        result = busy.result(timeout=5)
    assert time.monotonic() - started < 5
    assert result.errored and json.loads(result.payload)["errorType"] == "Runtime.ExitError"
