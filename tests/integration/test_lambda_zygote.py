"""Environments forked from the zygote look, to the function, like new processes: the same sys.path,
variables, working directory, process group and exit statuses; functions that could tell the
difference get new processes. Real awslambdaric processes against ProcessLambdaRunner, no moto."""
from __future__ import annotations

import io
import json
import os
import signal
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from scones.local.emulator.lambda_runner import ProcessLambdaRunner
from scones.local.emulator.lambda_spec import FunctionSpec

pytestmark = pytest.mark.integration

SOURCE = '''
import os, sys, tempfile, time

def probe(event, context):
    import boto3
    return {"path": sys.path, "executable": sys.executable, "prefix": sys.prefix, "cwd": os.getcwd(), "argv": sys.argv,
            "env": dict(os.environ), "tz": time.tzname, "tmp": tempfile.gettempdir(), "boto3": boto3.__file__,
            "own_group": os.getpgid(0) == os.getpid() == os.getsid(0), "parent": os.getppid(),
            "encoding": sys.stdout.encoding, "stdin": os.read(0, 1) == b"", "pid": os.getpid(), "mounts": mounts()}

def mounts():
    """The sandbox's mounts as /proc/self/mountinfo has them, less their ids and the runner's own directory:
    the last part of the mount's root, options, type, source and superblock options."""
    seen = {}
    with open("/proc/self/mountinfo") as table:
        for line in table:
            fields = line.split()
            if fields[4] in ("/var", "/var/task", "/var/lang", "/opt", "/tmp"):
                seen[fields[4]] = [os.path.basename(fields[3]), fields[5], *fields[fields.index("-") + 1:]]
    return seen

def client(event, context):
    import boto3
    return boto3.client("s3", region_name="us-east-1").meta.region_name

def models(event, context):
    import boto3
    from botocore import loaders
    first, second = loaders.Loader().load_data("endpoints"), loaders.Loader().load_data("endpoints")
    s3 = boto3.client("s3", region_name="eu-west-1")
    return {"equal": first == second, "shared": first is second, "loader": loaders.JSONFileLoader.load_file.__name__,
            "operations": s3.meta.service_model.operation_names, "url": s3.meta.endpoint_url,
            "regions": boto3.session.Session().get_available_regions("sagemaker-runtime")}

def where(event, context):
    import importlib
    return {"file": importlib.import_module(event["module"]).__file__, "parent": os.getppid()}

def exits(event, context):
    if event["signal"]:
        os.kill(os.getpid(), signal_number(event["signal"]))
    os._exit(event["status"])

def signal_number(name):
    import signal
    return getattr(signal, name)
'''
PER_ENVIRONMENT = {"AWS_LAMBDA_LOG_STREAM_NAME", "AWS_LAMBDA_RUNTIME_API"}


def _zip(extra: dict[str, str] | None = None) -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fn.py", SOURCE)
        for name, text in (extra or {}).items():
            zf.writestr(name, text)
    return archive.getvalue()


def spec(name: str, handler: str = "fn.probe", environment: dict[str, str] | None = None, sha: str = "z") -> FunctionSpec:
    return FunctionSpec(
        name=name, arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}", handler=handler, runtime="python3.11",
        version="$LATEST", timeout_s=10, memory_mb=128, region="us-east-1", code_sha256=f"{sha}-{name}",
        environment=environment or {},
    )  # fmt: skip


@pytest.fixture
def runners(tmp_path: Path) -> Iterator[tuple[ProcessLambdaRunner, ProcessLambdaRunner, int]]:
    """(a runner forking from its zygote, a runner starting new processes, the zygote's pid)."""
    from scones.local.emulator import lambda_sandbox
    from scones.local.emulator.lambda_zygote import visible_in_sandbox

    runtime = lambda_sandbox.ensure_runtime()
    if lambda_sandbox.namespaces_available() and not visible_in_sandbox(runtime):
        pytest.skip(f"the runtime venv {runtime} is under a path the sandbox mounts over: environments are not forked")
    forking = ProcessLambdaRunner("http://127.0.0.1:9", tmp_path / "forking")
    fresh = ProcessLambdaRunner("http://127.0.0.1:9", tmp_path / "fresh", zygote=False)
    try:
        zygote = forking.launcher.zygote_pid(timeout_s=30)
        assert zygote is not None, "the zygote did not start: see forking/environments/zygote.log"
        yield forking, fresh, zygote
    finally:
        forking.close()
        fresh.close()


def _probe(runner: ProcessLambdaRunner, function: FunctionSpec, code: bytes | None = None) -> dict:
    result = runner.invoke(function, lambda: code or _zip(), {})
    assert not result.errored, result.payload
    return json.loads(result.payload)


def test_a_forked_environment_sees_what_a_new_process_sees(runners):
    forking, fresh, zygote = runners
    forked, new = _probe(forking, spec("same")), _probe(fresh, spec("same"))
    assert forked.pop("parent") == zygote and new.pop("parent") != zygote
    forked.pop("pid"), new.pop("pid")
    forked_env, new_env = forked.pop("env"), new.pop("env")
    assert {k: v for k, v in forked_env.items() if k not in PER_ENVIRONMENT} == {
        k: v for k, v in new_env.items() if k not in PER_ENVIRONMENT
    }
    forked_boto3, new_boto3 = forked.pop("boto3"), new.pop("boto3")
    assert Path(forked_boto3).parts[-3:] == Path(new_boto3).parts[-3:] == ("site-packages", "boto3", "__init__.py")
    assert forked == new
    assert forked["own_group"] and forked["stdin"] and forked["encoding"].lower() == "utf-8"


def test_botocore_data_parsed_in_the_zygote_is_what_a_new_process_parses_and_is_never_shared(runners):
    forking, fresh, _ = runners
    forked, new = _probe(forking, spec("models", "fn.models")), _probe(fresh, spec("models", "fn.models"))
    assert forked.pop("loader") == "load_preparsed_file", "the zygote did not pre-parse: see forking/environments/zygote.log"
    assert new.pop("loader") == "load_file"
    assert forked == new
    assert forked["equal"] and not forked["shared"] and len(forked["operations"]) > 90 and forked["regions"]


@pytest.mark.parametrize(
    ("module", "environment"),
    [("boto3", {}), ("dateutil", {}), (None, {"PYTHONHASHSEED": "0"}), (None, {"LANG": "C.UTF-8"})],
    ids=["bundled boto3", "bundled module the zygote imported", "interpreter variable", "locale"],
)  # fmt: skip
def test_a_function_that_could_tell_gets_a_new_process(runners, module, environment):
    forking, _, zygote = runners
    function = spec(f"own-{module or 'env'}", "fn.where", environment, sha=json.dumps(environment))
    code = _zip({f"{module}/__init__.py": "BUNDLED = True\n"} if module else {})
    result = forking.invoke(function, lambda: code, {"module": module or "os"})
    seen = json.loads(result.payload)
    assert seen["parent"] != zygote
    if module:
        assert "site-packages" not in seen["file"] and seen["file"].endswith(f"{module}/__init__.py")


@pytest.mark.parametrize(
    ("status", "sent", "message"),
    [(3, None, "Runtime exited with error: exit status 3"), (0, None, "Runtime exited without providing a reason"),
     (0, "SIGKILL", "Runtime exited with error: signal: killed")],
)  # fmt: skip
def test_a_forked_environments_end_reads_as_a_new_processs(runners, status, sent, message):
    forking, fresh, _ = runners
    for runner in (forking, fresh):
        result = runner.invoke(spec("exits", "fn.exits"), lambda: _zip(), {"status": status, "signal": sent})
        assert result.errored
        assert json.loads(result.payload)["errorMessage"].endswith(message)


def test_no_environment_outlives_its_zygote(runners):
    forking, _, zygote = runners
    first = _probe(forking, spec("survivor"))
    assert first["parent"] == zygote
    os.kill(zygote, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _running(first["pid"]):
        assert time.monotonic() < deadline, "the dead zygote's environment still runs"
        time.sleep(0.05)
    again = _probe(forking, spec("survivor"))  # a new environment answers
    assert again["parent"] != zygote and again["pid"] != first["pid"]


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_without_namespaces_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Not root (the compose profile's container): no sandbox, host paths, a TMPDIR per environment."""
    from scones.local.emulator import lambda_sandbox

    monkeypatch.setattr(lambda_sandbox, "namespaces_available", lambda: False)
    forking = ProcessLambdaRunner("http://127.0.0.1:9", tmp_path)  # one work dir: the same code path for both
    fresh = ProcessLambdaRunner("http://127.0.0.1:9", tmp_path, zygote=False)
    try:
        zygote = forking.launcher.zygote_pid(timeout_s=30)
        forked, new = _probe(forking, spec("bare")), _probe(fresh, spec("bare"))
    finally:
        forking.close()
        fresh.close()
    assert forked.pop("parent") == zygote and new.pop("parent") != zygote
    forked_env, new_env = forked.pop("env"), new.pop("env")
    per_environment = PER_ENVIRONMENT | {"TMPDIR"}
    assert {k: v for k, v in forked_env.items() if k not in per_environment} == {
        k: v for k, v in new_env.items() if k not in per_environment
    }
    for seen in (forked, new):
        seen.pop("pid"), seen.pop("boto3")
        assert seen.pop("tmp").startswith(str(tmp_path))
    assert forked == new
    assert forked["cwd"] == str(tmp_path / "code" / "bare-z-bare")


def test_a_zygote_that_cannot_start_is_tried_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from scones.local.emulator import lambda_zygote

    starts = tmp_path / "starts"
    broken = tmp_path / "broken_zygote.py"
    broken.write_text(f"open({str(starts)!r}, 'a').write('started\\n')\nraise SystemExit('no boto3 here')\n")
    monkeypatch.setattr(lambda_zygote, "SERVER", broken)
    runner = ProcessLambdaRunner("http://127.0.0.1:9", tmp_path / "work")
    try:
        for name in ("one", "two", "three"):
            assert _probe(runner, spec(name))["parent"] == os.getpid()  # new processes, children of this one
            time.sleep(0.3)  # time for the zygote to die
        assert "no boto3 here" in (tmp_path / "work" / "environments" / "zygote.log").read_text()
    finally:
        runner.close()
    assert starts.read_text() == "started\n"
    assert not runner.launcher.use_zygote


def test_a_runtime_the_sandbox_would_hide_is_not_forked_from(tmp_path: Path):
    """A runtime venv under /tmp (a checkout there) is hidden by the sandbox's own /tmp: botocore's data
    files with it. Its environments start as new processes, which see it at /var/lang."""
    from scones.local.emulator import lambda_sandbox

    if not lambda_sandbox.namespaces_available():
        pytest.skip("no mount namespaces here: nothing is hidden")
    hidden = Path("/tmp") / f"scones-runtime-link-{os.getpid()}"
    hidden.symlink_to(lambda_sandbox.ensure_runtime())
    runner = ProcessLambdaRunner("http://127.0.0.1:9", tmp_path, runtime_dir=hidden)
    try:
        zygote = runner.launcher.zygote_pid(timeout_s=30)
        assert zygote is not None
        for name in ("hidden-one", "hidden-two"):
            assert _probe(runner, spec(name))["parent"] != zygote
            made = runner.invoke(spec(f"{name}-client", "fn.client"), lambda: _zip(), {})  # botocore reads its data files
            assert not made.errored and json.loads(made.payload) == "us-east-1", made.payload
    finally:
        runner.close()
        hidden.unlink()
