"""The embedded stack: a moto server (Lambda as local processes) and the model server, no Docker.

`start_stack` starts both as background processes in their own sessions (so `stop_stack` can
end each with everything it spawned), waits until they answer, deploys the workflow with the
same `deploy_stack` that LocalStack and AWS use, and records the result in the state file.
"""
from __future__ import annotations

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
from scones.model.artifact import InvalidArtifact, artifact_class_names
from scones.model.config import FAKE_CREDENTIALS, Settings
from scones.local.stacks.state import StackNotRunning, StackState, load_state, new_state, remove_state, save_state

HOST = "127.0.0.1"
MOTO_READY_TIMEOUT_S = 60.0
MODEL_READY_TIMEOUT_S = 180.0  # importing torch and loading the model on two busy cores
STOP_TIMEOUT_S = 10.0
MOTO_PROCESS = "moto"
MODEL_PROCESS = "model_server"


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


def free_port(host: str = HOST) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


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
        time.sleep(0.1)
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


def start_moto_host(log_path: Path, region: str, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """`python -m scones.local.emulator.moto_host` on a free port; returns (process, URL) once it answers."""
    ensure_runtime(progress=True)  # built once (about 20 s), before moto's ready timeout starts
    port = port or free_port()
    url = f"http://{HOST}:{port}"
    argv = [sys.executable, "-m", "scones.local.emulator.moto_host", "--host", HOST, "--port", str(port)]
    process = spawn(argv, log_path, child_environment(url, region))
    wait_ready("moto server", process, log_path, lambda: http_answers(f"{url}/moto-api/"), MOTO_READY_TIMEOUT_S)
    return process, url


def _spawn_model_server(model_path: Path, port: int, *, endpoint_name: str, bucket: str,
                        aws_endpoint_url: str, region: str, log_path: Path) -> subprocess.Popen:
    argv = [
        sys.executable, "-m", "scones.model.server", "--model", str(model_path), "--host", HOST, "--port", str(port),
        "--endpoint-name", endpoint_name, "--capture-s3-uri", f"s3://{bucket}/capture", "--capture-percent", "100",
    ]  # fmt: skip
    return spawn(argv, log_path, child_environment(aws_endpoint_url, region))


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
    settings: Settings, model_path: Path, threshold: float | None = None, region: str | None = None
) -> StartedStack:
    """Start moto and the model server, deploy the workflow, record and return the StackState."""
    from scones.local.deploy.stack import StackConfig, deploy_stack

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
    logs = logs_dir(settings)

    moto_port, model_port = free_port(), free_port()
    aws_url, model_url = f"http://{HOST}:{moto_port}", f"http://{HOST}:{model_port}"
    processes: dict[str, subprocess.Popen] = {}
    try:
        # The model server (slow: torch) starts while moto does.
        processes[MODEL_PROCESS] = _spawn_model_server(
            model_path, model_port, endpoint_name=settings.endpoint_name, bucket=settings.bucket,
            aws_endpoint_url=aws_url, region=region, log_path=logs / "model-server.log",
        )  # fmt: skip
        processes[MOTO_PROCESS], _ = start_moto_host(logs / "moto.log", region, moto_port)
        state = new_state(
            settings, "embedded", class_names=class_names, aws_endpoint_url=aws_url, model_server_url=model_url,
            region=region, threshold=threshold, processes={name: p.pid for name, p in processes.items()},
            model_path=str(model_path),
        )  # fmt: skip
        save_state(settings, state)  # recorded before deploying, so `scones down` can clean up a failed start
        config = StackConfig(
            stack_name=settings.stack_name, bucket=settings.bucket, endpoint_name=settings.endpoint_name,
            class_names=tuple(class_names), threshold=threshold,
            lambda_environment={"AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": model_url},
        )  # fmt: skip
        outputs = deploy_stack(state.boto3_session(), config)  # while the model server loads
        wait_ready("model server", processes[MODEL_PROCESS], logs / "model-server.log",
                   lambda: http_answers(f"{model_url}/ping", 200), MODEL_READY_TIMEOUT_S)  # fmt: skip
        state = replace(state, bucket=outputs.bucket, state_machine_arn=outputs.state_machine_arn)
        save_state(settings, state)
    except BaseException:
        for process in processes.values():
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
    stopped = [name for name, pid in state.processes.items() if stop_process_group(pid)]
    busy = [url for url in (state.aws_endpoint_url, state.model_server_url) if url and _still_listening(url)]
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


def stop_model_server(settings: Settings) -> None:
    """Stop only the model server of the running stack (moto and the Lambdas keep running)."""
    state = load_state(settings)
    pid = state.processes.pop(MODEL_PROCESS, None)
    if pid is not None:
        stop_process_group(pid)
    if state.model_server_url and _still_listening(state.model_server_url):
        raise StackStartError(f"the model server's port is still busy: {state.model_server_url}")
    save_state(settings, state)


def start_model_server(settings: Settings) -> StackState:
    """Start the model server again on the same URL the Lambdas were deployed with."""
    state = load_state(settings)
    if MODEL_PROCESS in state.processes and process_alive(state.processes[MODEL_PROCESS]):
        return state
    if not (state.model_path and state.model_server_url and state.aws_endpoint_url):
        raise StackNotRunning(f"{settings.state_file} does not describe an embedded stack with a model server")
    log_path = logs_dir(settings) / "model-server.log"
    process = _spawn_model_server(
        Path(state.model_path), _port_of(state.model_server_url), endpoint_name=state.endpoint_name,
        bucket=state.bucket, aws_endpoint_url=state.aws_endpoint_url, region=state.region, log_path=log_path,
    )  # fmt: skip
    try:
        wait_ready("model server", process, log_path, lambda: http_answers(f"{state.model_server_url}/ping", 200),
                   MODEL_READY_TIMEOUT_S)  # fmt: skip
    except BaseException:
        stop_process_group(process.pid)
        raise
    state.processes[MODEL_PROCESS] = process.pid
    save_state(settings, state)
    return state
