"""Execution environments forked from a zygote: the runtime's interpreter with boto3 already imported.

A new environment spent ~0.25 s of CPU importing boto3 before the function's own code ran (on 2
cores, a third of a burst's cold-start cost). `EnvironmentLauncher` starts one zygote per runner
(`lambda_zygote_server.py`, in the runtime's interpreter) when the first environment starts, and
forks the later ones from it; each child builds the same sandbox, environment variables, sys.path
and `python -m awslambdaric HANDLER` a new process would have. The zygote has also parsed botocore's
shared data and two services' models, which a child's first botocore Loader takes instead of parsing
them (`preparse_botocore_data`). An environment starts as a new
process instead when the zygote is not ready, or when its function could tell the difference: its
code or layers bundle a module the zygote has imported (its own boto3, say), or it sets a variable
the interpreter reads only at start (PYTHON*, LC_*, LANG, LD_*).

Differences that remain (documented in the README): the preloaded modules' `__file__` name the
runtime's host path instead of /var/lang, every forked environment has the zygote's hash seed, and
botocore's JSONFileLoader.load_file is the zygote's wrapper.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import IO, Protocol

from scones.local.emulator.lambda_sandbox import SANDBOX_HIDES, Launch

SERVER = Path(__file__).with_name("lambda_zygote_server.py")
FORK_TIMEOUT_S = 10.0
_STARTUP_VARIABLES = ("PYTHON", "LC_", "LD_")  # prefixes of variables the interpreter reads when it starts


class EnvironmentProcess(Protocol):
    """What the pool needs of an environment's process (subprocess.Popen has it)."""

    pid: int

    def poll(self) -> int | None: ...

    def wait(self) -> int: ...


class ForkedProcess:
    """A zygote's child, seen as a Popen: its exit code comes from the zygote, which reaps it."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        self._ended = threading.Event()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self) -> int:
        self._ended.wait()
        assert self.returncode is not None
        return self.returncode

    def ended(self, code: int) -> None:
        if self.returncode is None:
            self.returncode = code
            self._ended.set()


class Zygote:
    """One zygote process and the children it forked for us."""

    def __init__(self, runtime: Path, env: dict[str, str], log_path: Path):
        self.env = env
        self.preloaded: frozenset[str] = frozenset()
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._replies: dict[int, dict] = {}
        self._replied = threading.Condition(self._lock)
        self._children: dict[int, ForkedProcess] = {}
        self._next_id = 0
        self._dead = False
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(runtime / "bin" / "python"), "-P", str(SERVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=log, env=env, cwd="/", start_new_session=True,
            )  # fmt: skip
        assert self.process.stdin is not None and self.process.stdout is not None
        self._requests: IO[bytes] = self.process.stdin
        threading.Thread(target=self._read, args=(self.process.stdout,), name="lambda-zygote", daemon=True).start()

    def wait_ready(self, timeout_s: float) -> bool:
        return self._ready.wait(timeout_s) and not self._dead

    def was_ready(self) -> bool:
        return self._ready.is_set()

    def fork(self, request: dict) -> ForkedProcess:
        """A new environment from `request` (see lambda_zygote_server); OSError if the zygote can't."""
        with self._lock:
            if self._dead:
                raise OSError("the Lambda zygote has exited")
            self._next_id += 1
            ident = self._next_id
            self._requests.write(json.dumps({**request, "id": ident}).encode() + b"\n")
            self._requests.flush()
            if not self._replied.wait_for(lambda: ident in self._replies or self._dead, FORK_TIMEOUT_S):
                raise OSError(f"the Lambda zygote did not answer in {FORK_TIMEOUT_S:.0f} s")
            reply = self._replies.pop(ident, {"error": "the Lambda zygote has exited"})
            if "error" in reply:
                raise OSError(reply["error"])
            return reply["child"]

    def close(self) -> None:
        with self._lock:
            self._dead = True
        with contextlib.suppress(OSError):
            self._requests.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _read(self, replies: IO[bytes]) -> None:
        for line in replies:
            message = json.loads(line)
            if message.get("ready"):
                self.preloaded = frozenset(message["preloaded"])
                self._ready.set()
            elif "exit" in message:  # always after the reply that named the pid
                with self._lock:
                    child = self._children.pop(message["pid"], None)
                if child is not None:
                    child.ended(message["exit"])
            else:
                with self._lock:
                    if "pid" in message:
                        message["child"] = self._children[message["pid"]] = ForkedProcess(message["pid"])
                    self._replies[message["id"]] = message
                    self._replied.notify_all()
        self._orphan_children()

    def _orphan_children(self) -> None:
        """The zygote is gone and nobody will reap its children: end them, as a crashed host would."""
        with self._lock:
            self._dead = True
            children, self._children = list(self._children.values()), {}
            self._replied.notify_all()
        for child in children:
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.ended(-signal.SIGKILL)


def module_names(*directories: Path) -> set[str]:
    """Top-level module names that importing from these directories could find (foo.py, foo/, foo.*.so)."""
    names: set[str] = set()
    for directory in directories:
        try:
            names.update(entry.partition(".")[0] for entry in os.listdir(directory))
        except OSError:
            continue
    return names


def visible_in_sandbox(path: Path) -> bool:
    """True when neither the path as given nor where it leads is under a directory the sandbox mounts over."""
    return not any(candidate == root or candidate.startswith(root + "/")
                   for candidate in (str(path), str(path.resolve())) for root in SANDBOX_HIDES)  # fmt: skip


class EnvironmentLauncher:
    """Starts execution environments: forked from the zygote when a function can't tell, else new processes."""

    def __init__(self, runtime: Path, base_env: dict[str, str], work_dir: Path, use_zygote: bool = True):
        self.runtime = runtime
        self.base_env = base_env
        self.work_dir = work_dir
        self.use_zygote = use_zygote
        self._runtime_visible_in_sandbox = visible_in_sandbox(runtime)  # resolves symlinks: once, not per start
        self._zygote: Zygote | None = None
        self._lock = threading.Lock()

    def start(self, launch: Launch, code: Path, opt: Path, env: dict[str, str], output: Path) -> EnvironmentProcess:
        zygote = self._ready_zygote()
        if zygote is not None and self._forkable(zygote, launch, code, opt, env):
            request = {
                "env": env, "handler": launch.handler, "cwd": launch.cwd, "output": str(output),
                "runtime_host": str(self.runtime), "runtime_seen": launch.runtime_seen,
                "sandbox": launch.sandbox,
            }  # fmt: skip
            try:
                return zygote.fork(request)
            except OSError:
                pass  # a new process below; the zygote's own log says why
        with open(output, "ab") as log:
            return subprocess.Popen(
                launch.argv, cwd=code, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill() takes the function's children too
            )  # fmt: skip

    def zygote_pid(self, timeout_s: float = 0.0) -> int | None:
        """The zygote's pid once it is ready (starting it if needed and waiting up to timeout_s), else None."""
        self._ready_zygote()
        zygote = self._zygote
        if zygote is None or not zygote.wait_ready(timeout_s):
            return None
        return zygote.process.pid

    def close(self) -> None:
        with self._lock:
            zygote, self._zygote = self._zygote, None
        if zygote is not None:
            zygote.close()

    def _ready_zygote(self) -> Zygote | None:
        """The zygote if it is ready; the first call starts it (this environment starts as a new process),
        as does the first after it died. One that died before it was ready is not tried again."""
        with self._lock:
            zygote = self._zygote
            if zygote is not None and zygote.process.poll() is not None:
                self.use_zygote = self.use_zygote and zygote.was_ready()  # else zygote.log says why it failed
                zygote = self._zygote = None
            if not self.use_zygote:
                return None
            if zygote is None:
                self._zygote = Zygote(self.runtime, self.base_env, self.work_dir / "zygote.log")
                return None
            return zygote if zygote.wait_ready(0.0) else None

    def _forkable(self, zygote: Zygote, launch: Launch, code: Path, opt: Path, env: dict[str, str]) -> bool:
        if launch.sandbox is not None and not self._runtime_visible_in_sandbox:
            return False  # the zygote's modules (botocore's data files) would be hidden by the sandbox's mounts
        startup = {key for key in {*env, *zygote.env} if key.startswith(_STARTUP_VARIABLES) or key in ("LANG", "LANGUAGE")}
        if any(env.get(key) != zygote.env.get(key) for key in startup - {"PYTHONPATH"}):
            return False
        layer_dirs = [opt / "python", *sorted((opt / "python" / "lib").glob("python*/site-packages"))]
        return not (module_names(code, *layer_dirs) & zygote.preloaded)
