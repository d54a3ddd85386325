"""A model server process started before its endpoint exists, with torch already imported.

A local endpoint's "instance" is `python -m scones.model.server`, and most of its start is `import
torch` (1.5-3.5 s on two busy cores), while the model itself loads in tens of milliseconds. When
`scones up` starts the moto host it asks for one standby: a process that imports what the server
imports, then waits on its stdin for the arguments, environment and log file of a real server. The
endpoint control plane claims it at CreateEndpoint instead of starting a new process; from then on it
is `python -m scones.model.server` with those arguments (the same click command, the same /ping), so
the endpoint is still Creating until /ping answers 200 with its artifact loaded, and a bad artifact
still fails it with the reason. Only one endpoint gets the standby; it is not replaced.

A standby cannot be used when the server's environment differs from the one it imported under in a
variable read at import time (OpenMP, CUDA, torch, Python, the loader): then a new process starts.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

MODULE = "scones.local.emulator.model_server_standby"
SERVER_PROG = "python -m scones.model.server"
# Read when torch and its libraries load (OMP_NUM_THREADS by libgomp, ...): a claim must not change them.
IMPORT_TIME_PREFIXES = ("OMP_", "GOMP_", "KMP_", "MKL_", "OPENBLAS_", "CUDA_", "NVIDIA_", "PYTORCH_", "TORCH_", "PYTHON",
                        "LD_", "MALLOC_")  # fmt: skip


def _import_time_variables(env: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in env.items() if key.startswith(IMPORT_TIME_PREFIXES)}


class StandbyModelServer:
    """The parent's handle on a standby process (the control plane's side)."""

    def __init__(self, process: subprocess.Popen[bytes], env: dict[str, str]) -> None:
        self.process = process
        self.env = env

    @classmethod
    def spawn(cls, env: dict[str, str], log_path: Path) -> StandbyModelServer:
        """Start the standby (in the caller's process group: it stops with the moto host)."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log_file:
            process = subprocess.Popen([sys.executable, "-m", MODULE], stdin=subprocess.PIPE, stdout=log_file,
                                       stderr=subprocess.STDOUT, env=env)  # fmt: skip
        return cls(process, env)

    def claim(self, server_args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes] | None:
        """Turn the standby into `python -m scones.model.server SERVER_ARGS`; None (and the standby stopped)
        when it died or `env` differs from its own in a variable read at import time."""
        if self.process.poll() is not None or _import_time_variables(env) != _import_time_variables(self.env):
            self.stop()
            return None
        claim = json.dumps({"args": server_args, "env": env, "log": str(log_path)}) + "\n"
        stdin = self.process.stdin
        try:
            if stdin is None:
                raise OSError("the standby has no stdin")
            stdin.write(claim.encode())
            stdin.close()
        except OSError:  # it exited meanwhile
            self.stop()
            return None
        return self.process

    def stop(self) -> None:
        """Release an unclaimed standby (it exits on its own when its stdin closes; killed if it is still importing)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()


def preload() -> None:
    """What the server and the artifact's inference.py import (torch above all), before any endpoint."""
    import numpy  # noqa: F401
    import torch  # noqa: F401
    import uvicorn.config
    import uvicorn.server  # noqa: F401
    from PIL import Image  # noqa: F401

    import scones.model.server.app
    import scones.model.server.cli  # noqa: F401


def _serve(claim: dict) -> None:
    """Become the model server the claim describes: its log file, its environment, its command line."""
    with open(claim["log"], "ab") as log_file:
        os.dup2(log_file.fileno(), sys.stdout.fileno())
        os.dup2(log_file.fileno(), sys.stderr.fileno())
    os.environ.clear()
    os.environ.update(claim["env"])
    sys.argv = [SERVER_PROG, *claim["args"]]
    from scones.model.server.cli import serve

    serve.main(args=claim["args"], prog_name=SERVER_PROG)


def main() -> None:
    preload()
    line = sys.stdin.readline()
    if line:  # an empty line: released unclaimed
        _serve(json.loads(line))


if __name__ == "__main__":
    main()
