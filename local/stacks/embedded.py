"""The embedded stack: a moto server (Lambdas and SageMaker endpoints as local processes), no Docker.

`start_stack` starts the moto host as a background process in its own session (so `stop_stack`
ends it with everything it spawned: Lambda workers and the endpoints' model servers), waits
until it answers, then promotes the model to it with the same `promote_stack` that
scripts/promote.sh runs against AWS (workflow, model in S3, SageMaker Model, EndpointConfig and
Endpoint), and records the result in the state file.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from scones.local.emulator.lambda_sandbox import ensure_runtime
from scones.local.emulator.ports import free_port
from scones.model.artifact import InvalidArtifact, artifact_class_names
from scones.model.config import FAKE_CREDENTIALS, Settings
from scones.local.stacks.state import StackNotRunning, StackState, load_state, new_state, remove_state, save_state

HOST = "127.0.0.1"
MOTO_READY_TIMEOUT_S = 60.0
READY_POLL_S = 0.05  # a refused connection costs nothing; every 50 ms waited is on `scones up`'s critical path
ENDPOINT_POLL_S = 0.1  # a local endpoint is InService in seconds, not minutes (a DescribeEndpoint costs ~5 ms)
LOCAL_INSTANCE_TYPE = "ml.m5.large"  # recorded only: the endpoint is a process on this machine
ENDPOINTS_ADMIN = "/_scones/sagemaker/endpoints"  # the moto host's view of its endpoint servers
STOP_TIMEOUT_S = 10.0
MOTO_PROCESS = "moto"


class StackStartError(RuntimeError):
    """A stack process died or did not become ready; the message carries its log tail."""


class StackAlreadyRunning(RuntimeError):
    """A second `up` while the state file names live processes."""


class ModelNotFound(FileNotFoundError):
    """No model.tar.gz given and none in the training output folder."""


@dataclass(frozen=True)
class StartedStack:
    state: StackState
    seconds_to_ready: float


def logs_dir(settings: Settings) -> Path:
    return settings.home / "logs"


def port_is_listening(port: int, host: str = HOST) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def child_environment(aws_endpoint_url: str, region: str) -> dict[str, str]:
    """This environment pointed at moto, with dummy credentials: stack processes never reach AWS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        {
            "AWS_ENDPOINT_URL": aws_endpoint_url,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            **FAKE_CREDENTIALS,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def spawn(argv: list[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen:
    """A background process in its own session (pid == process group id), logging to log_path."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def process_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (reaping it if it is our child)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, found in /proc."""
    process_alive(pgid)  # reaps the leader if it is our exited child
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields_after_name = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields_after_name[2]) == pgid and fields_after_name[0] != "Z":
                members.append(int(entry.name))
    return members


def _is_ours(pid: int) -> bool:
    """Guard against pid reuse: only stop process groups running our own programs."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return any(marker in cmdline for marker in (b"scones.local.emulator.moto_host", b"scones.model.server", b"awslambdaric"))


def stop_process_group(pgid: int, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """SIGTERM the process group, SIGKILL what is left; True if there was something to stop."""
    members = _group_members(pgid)
    if not any(_is_ours(pid) for pid in members):
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _group_members(pgid):
                return True
            time.sleep(0.05)
    return True


def wait_ready(name: str, process: subprocess.Popen, log_path: Path, probe: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackStartError(f"{name} exited with status {process.returncode}; last lines of {log_path}:\n{log_tail(log_path)}")
        if probe():
            return
        time.sleep(READY_POLL_S)
    raise StackStartError(f"{name} not ready after {timeout_s:.0f} s; last lines of {log_path}:\n{log_tail(log_path)}")


def http_answers(url: str, expect_status: int | None = None) -> bool:
    """True when url answers HTTP (with expect_status, if given)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return expect_status is None or response.status == expect_status
    except urllib.error.HTTPError as error:
        return expect_status is None or error.code == expect_status
    except (OSError, ValueError):
        return False


def start_moto_host(log_path: Path, region: str, port: int | None = None, prewarm_model_server: bool = False,
                    lambda_environments: int | None = None) -> tuple[subprocess.Popen, str]:  # fmt: skip
    """`python -m scones.local.emulator.moto_host` on a free port; returns (process, URL) once it answers."""
    ensure_runtime(progress=True)  # built once (about 20 s), before moto's ready timeout starts
    port = port or free_port()
    url = f"http://{HOST}:{port}"
    argv = [sys.executable, "-m", "scones.local.emulator.moto_host", "--host", HOST, "--port", str(port)]
    argv += ["--prewarm-model-server"] if prewarm_model_server else []
    argv += ["--max-workers-per-function", str(lambda_environments)] if lambda_environments else []
    process = spawn(argv, log_path, child_environment(url, region))
    wait_ready("moto server", process, log_path, lambda: http_answers(f"{url}/moto-api/"), MOTO_READY_TIMEOUT_S)
    return process, url


def model_class_names(model_path: Path) -> list[str]:
    """class_names of a model.tar.gz or an extracted model dir, as ModelNotFound when it is neither."""
    try:
        return list(artifact_class_names(model_path))
    except InvalidArtifact as error:
        raise ModelNotFound(str(error)) from error


def default_model_path(settings: Settings) -> Path:
    """The newest model.tar.gz under `scones train`'s default output folder."""
    candidates = sorted(
        {p.resolve() for root in (settings.home / "model", Path(".scones/model")) if root.is_dir() for p in root.rglob("model.tar.gz")},
        key=lambda p: p.stat().st_mtime,
    )
    if not candidates:
        raise ModelNotFound(
            f"no model.tar.gz under {settings.home / 'model'}: train one with `scones train` "
            "(or run `scones demo`), or pass --model PATH"
        )
    return candidates[-1]


def running_state(settings: Settings) -> StackState | None:
    """The recorded stack if any of its processes still runs; a stale state file is removed."""
    try:
        state = load_state(settings)
    except StackNotRunning:
        return None
    if state.target == "embedded" and not any(process_alive(pid) for pid in state.processes.values()):
        remove_state(settings)
        return None
    return state


def start_stack(
    settings: Settings, model_path: Path, threshold: float | None = None, region: str | None = None,
    lambda_environments: int | None = None,
) -> StartedStack:
    """Start the moto host, promote the model and workflow to it, record and return the StackState."""
    from scones.local.aws.promote import PromoteRequest, promote_stack

    existing = running_state(settings)
    if existing is not None:
        raise StackAlreadyRunning(
            f"a {existing.target} stack is already running (started {existing.started_at}, state in "
            f"{settings.state_file}); stop it with `scones down`"
        )
    model_path = Path(model_path).resolve()
    if not model_path.exists():
        raise ModelNotFound(f"no model at {model_path}")
    class_names = model_class_names(model_path)
    region = region or settings.region
    threshold = settings.threshold if threshold is None else threshold
    started = time.monotonic()
    process: subprocess.Popen | None = None
    try:
        process, aws_url = start_moto_host(logs_dir(settings) / "moto.log", region, prewarm_model_server=True,
                                           lambda_environments=lambda_environments)  # fmt: skip
        state = new_state(
            settings, "embedded", class_names=class_names, aws_endpoint_url=aws_url, model_server_url=None,
            region=region, threshold=threshold, processes={MOTO_PROCESS: process.pid}, model_path=str(model_path),
        )  # fmt: skip
        save_state(settings, state)  # recorded before deploying, so `scones down` can clean up a failed start
        request = PromoteRequest(
            model=str(model_path), bucket=settings.bucket, stack_name=settings.stack_name,
            endpoint_name=settings.endpoint_name, instance_type=LOCAL_INSTANCE_TYPE, threshold=threshold,
        )  # fmt: skip
        result = promote_stack(state.boto3_session(), request, poll_s=ENDPOINT_POLL_S)
        state = replace(state, state_machine_arn=result.state_machine_arn)
        save_state(settings, state)
    except BaseException:
        if process is not None:
            stop_process_group(process.pid)
        remove_state(settings)
        raise
    return StartedStack(state, time.monotonic() - started)


def stop_stack(settings: Settings) -> list[str]:
    """Stop every process the state file names, check their ports are free, remove the state."""
    state = load_state(settings)
    if state.target != "embedded":
        raise StackStartError(f"the recorded stack is a {state.target} stack: stop it with "
                              + ("`docker compose down`" if state.target == "compose" else "`scones teardown`"))
    urls = [state.aws_endpoint_url, state.model_server_url, *_endpoint_server_urls(state)]
    stopped = [name for name, pid in state.processes.items() if stop_process_group(pid)]
    busy = [url for url in urls if url and _still_listening(url)]
    remove_state(settings)
    if busy:
        raise StackStartError(f"stopped {stopped} but something still listens on {busy}")
    return stopped


def _still_listening(url: str, grace_s: float = 5.0) -> bool:
    deadline = time.monotonic() + grace_s
    while port_is_listening(_port_of(url)):
        if time.monotonic() > deadline:
            return True
        time.sleep(0.05)
    return False


def endpoint_servers(state: StackState) -> list[dict]:
    """The moto host's endpoints with their model servers (status, url, pid per variant)."""
    with urllib.request.urlopen(f"{state.aws_endpoint_url}{ENDPOINTS_ADMIN}", timeout=5) as response:
        return json.loads(response.read())["Endpoints"]


def _endpoint_server_urls(state: StackState) -> list[str]:
    """The endpoints' model server URLs, if the moto host still answers (checked free after a stop)."""
    try:
        return [server["url"] for endpoint in endpoint_servers(state) for server in endpoint["servers"]]
    except (OSError, ValueError, KeyError):
        return []


def _endpoint_action(settings: Settings, action: str, timeout_s: float) -> StackState:
    state = load_state(settings)
    if state.target != "embedded" or not state.aws_endpoint_url:
        raise StackNotRunning(f"{settings.state_file} does not describe an embedded stack")
    url = f"{state.aws_endpoint_url}{ENDPOINTS_ADMIN}/{state.endpoint_name}/{action}"
    with urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"), timeout=timeout_s) as response:
        response.read()
    return state


def stop_model_server(settings: Settings) -> None:
    """Stop the endpoint's model server (as if its instance failed); it flushes its data capture first."""
    _endpoint_action(settings, "stop-servers", timeout_s=60)


def start_model_server(settings: Settings) -> StackState:
    """Replace the endpoint's model server with a new one; returns once it answers /ping."""
    return _endpoint_action(settings, "restart-servers", timeout_s=240)
