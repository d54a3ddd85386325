"""What a Lambda execution environment runs in: AWS's runtime client in a small interpreter of its
own, and (as root on Linux) a private mount namespace shaped like AWS's.

- The interpreter: a virtual environment with only the standard library, `awslambdaric` (AWS's
  Python runtime interface client) and boto3/botocore, as the AWS Python runtime has — not the
  project's venv, so `import PIL` or `import scones` fails as on AWS. Built once per versions
  below (pip, from the package registry) and cached under $SCONES_HOME/lambda-runtime
  (or $SCONES_LAMBDA_RUNTIME_CACHE).
- The sandbox: `unshare --mount` with the code read-only at /var/task, the interpreter at /var/lang,
  the layers (or nothing) at /opt, a private tmpfs /tmp sized by EphemeralStorage, all gone with
  the process. Where mount
  namespaces are not allowed (not root, no CAP_SYS_ADMIN) the process runs on the host's paths
  with TMPDIR set to a private directory (a documented difference: an absolute "/tmp/x" is shared).
"""
from __future__ import annotations

import fcntl
import functools
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# The runtime's packages, pinned so that the cache key names them (AWS updates its runtime's boto3
# every few months; these are the releases this emulator was tested with).
RUNTIME_PACKAGES = ("awslambdaric==4.2.2", "boto3==1.44.8", "botocore==1.44.8")
INSTALL_TIMEOUT_S = 600

# What the sandbox mounts over: host paths under these are not visible inside it.
SANDBOX_HIDES = ("/var", "/tmp", "/opt")

# AWS's layout, one step per line: built on a small tmpfs at the staging directory inside the new mount
# namespace, moved onto /var (hiding the host's /var in this namespace only), then /tmp and /opt.
# `sandbox_layout` fills in the paths; a new process runs it as shell (`layout_script`), the zygote's
# children as mount(2) calls (`lambda_zygote_server.build_sandbox`), so both get the same mounts.
SandboxStep = tuple[str, ...]  # (operation, *arguments)
_SHELL_STEPS = {
    "tmpfs": "mount -t tmpfs -o {2} {0} {1}",  # (name, target, options)
    "mkdir": "mkdir {0}",  # (path,)
    "bind_ro": "mount --bind {0} {1} && mount -o remount,bind,ro {1}",  # (source, target)
    "move": "mount --move {0} {1}",  # (source, target)
}


def sandbox_layout(stage: Path, code_dir: Path, runtime: Path, opt_dir: Path, tmp_mb: int) -> tuple[SandboxStep, ...]:
    """The steps that build AWS's layout: /var/task (code), /var/lang (runtime), /opt (layers) read-only,
    and a private /tmp of `tmp_mb` MB."""
    return (
        ("tmpfs", "scones-lambda", str(stage), "size=1m,mode=755"),
        *(("mkdir", f"{stage}/{name}") for name in ("task", "lang", "opt", "tmp")),
        ("bind_ro", str(code_dir), f"{stage}/task"),
        ("bind_ro", str(runtime), f"{stage}/lang"),
        ("bind_ro", str(opt_dir), f"{stage}/opt"),
        ("tmpfs", "scones-lambda-tmp", f"{stage}/tmp", f"size={tmp_mb}m,mode=1777"),
        ("move", str(stage), "/var"),
        ("move", "/var/tmp", "/tmp"),
        ("move", "/var/opt", "/opt"),
    )


def layout_script(layout: tuple[SandboxStep, ...]) -> str:
    """The layout as a shell script that then execs its arguments in /var/task."""
    lines = ["set -e"]
    for operation, *arguments in layout:
        lines.append(_SHELL_STEPS[operation].format(*map(shlex.quote, arguments)))
    return "\n".join([*lines, "cd /var/task", "unset OLDPWD", 'exec "$@"', ""])


class RuntimeUnavailable(RuntimeError):
    """The runtime's virtual environment could not be built (pip failed or no registry)."""


def runtime_cache_dir() -> Path:
    from scones.model.config import load_settings

    override = os.environ.get("SCONES_LAMBDA_RUNTIME_CACHE")
    return Path(override).resolve() if override else load_settings().home / "lambda-runtime"


def runtime_key() -> str:
    python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return "-".join([python, *(spec.replace("==", "") for spec in RUNTIME_PACKAGES)])


def ensure_runtime(cache_dir: Path | None = None, progress: bool = False) -> Path:
    """The runtime venv for these versions; built on first use (about 20 s), then reused."""
    cache_dir = cache_dir or runtime_cache_dir()
    target = cache_dir / runtime_key()
    if (target / ".complete").exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder; the others wait and reuse its result
        if (target / ".complete").exists():
            return target
        if progress:
            print(f"Building the Lambda runtime ({', '.join(RUNTIME_PACKAGES)}) in {target} ...", file=sys.stderr)
        _build_venv(target)
    return target


def _build_venv(target: Path) -> None:
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    base_python = getattr(sys, "_base_executable", sys.executable)
    commands = [
        [base_python, "-m", "venv", str(partial)],
        [str(partial / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *RUNTIME_PACKAGES],
    ]
    for command in commands:
        done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False)
        if done.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            raise RuntimeUnavailable(f"building the Lambda runtime failed: {' '.join(command)}:\n{done.stderr[-2000:]}")
    (partial / ".complete").touch()
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)  # the venv's own scripts keep the .partial path; only `python -m` is used


@functools.cache
def namespaces_available() -> bool:
    """True when this process may create mount namespaces and mount tmpfs (root on Linux)."""
    if not (shutil.which("unshare") and shutil.which("mount")):
        return False
    with tempfile.TemporaryDirectory(prefix="scones-probe-") as probe:
        command = ["unshare", "--mount", "--propagation", "private", "mount", "-t", "tmpfs", "-o", "size=1m", "none", probe]
        try:
            return subprocess.run(command, capture_output=True, timeout=10, check=False).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False


@dataclass(frozen=True)
class Launch:
    """How to start one execution environment: its handler, where the runtime sees its code and
    interpreter, the sandbox's layout (None: no mount namespace) and the environment variables that
    say where things are. `argv` starts it as a new process; the zygote forks it."""

    handler: str
    cwd: str  # the code directory as the runtime sees it (/var/task in the sandbox)
    runtime_seen: str  # the runtime venv as the runtime sees it (/var/lang in the sandbox)
    env: dict[str, str]
    sandbox: tuple[SandboxStep, ...] | None = None

    @property
    def argv(self) -> list[str]:
        """AWS starts the Python runtime as `python -m awslambdaric HANDLER` (its container images' entry point)."""
        runtime = [f"{self.runtime_seen}/bin/python", "-m", "awslambdaric", self.handler]
        if self.sandbox is None:
            return runtime
        sandbox = ["unshare", "--mount", "--propagation", "private", "sh", "-c", layout_script(self.sandbox), "sandbox"]
        return [*sandbox, *runtime]


def _layer_path(opt: str) -> str:
    """AWS's Python runtimes import layers from /opt/python/lib/pythonX.Y/site-packages and /opt/python."""
    return f"{opt}/python/lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages:{opt}/python"


def launch(runtime: Path, code_dir: Path, opt_dir: Path, env_dir: Path, handler: str, tmp_mb: int) -> Launch:
    """The sandbox where mount namespaces are allowed, else the host's paths with a private TMPDIR."""
    if namespaces_available():
        stage = env_dir / "root"
        stage.mkdir(parents=True, exist_ok=True)
        env = {"LAMBDA_TASK_ROOT": "/var/task", "PYTHONPATH": _layer_path("/opt")}
        return Launch(handler, "/var/task", "/var/lang", env, sandbox_layout(stage, code_dir, runtime, opt_dir, tmp_mb))
    tmp = env_dir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env = {"TMPDIR": str(tmp), "LAMBDA_TASK_ROOT": str(code_dir), "PYTHONPATH": _layer_path(str(opt_dir))}
    return Launch(handler, str(code_dir), str(runtime), env)
