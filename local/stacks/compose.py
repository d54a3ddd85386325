"""`scones up --compose`: the docker compose stack, brought up and read back as a StackState.

Compose does the work (`up -d --wait` builds, orders and health-checks the services, the
bootstrap service writes the state file); this module checks for an engine first, passes the
ports and SCONES_HOME through, and returns the state `scones classify` then uses.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from scones.local.stacks.docker_engine import compose_command, require_engine

REPO_ROOT = Path(__file__).resolve().parents[2]
PORT_VARIABLES = ("SCONES_LOCALSTACK_PORT", "SCONES_MODEL_PORT", "SCONES_MOTO_PORT")
UP_TIMEOUT_S = 1800  # first run: image builds and the small model's training


class ComposeFailed(RuntimeError):
    """`docker compose` exited non-zero; the message carries its last output."""


@dataclass
class ComposeProject:
    """One compose project: which files, profile, project name, and where its state file lands."""

    repo_root: Path = REPO_ROOT
    home: Path | None = None  # SCONES_HOME for the bootstrap's model cache and stack.json
    project_name: str = "scones"
    emulator: str = "localstack"  # or "moto" (the token-free profile)
    gpu: bool = False
    ports: dict[str, int] = field(default_factory=dict)  # e.g. SCONES_MODEL_PORT; free ports in tests
    # True: rebuild the images; False: never build (images built beforehand, e.g. by offline_images);
    # None: compose's default, build only images that are missing.
    build: bool | None = None

    @property
    def model_service(self) -> str:
        return "moto-model" if self.emulator == "moto" else "model"

    def _files(self) -> list[str]:
        files = ["-f", str(self.repo_root / "docker-compose.yml")]
        if self.gpu:
            files += ["-f", str(self.repo_root / "docker-compose.gpu.yml")]
        profile = ["--profile", "moto"] if self.emulator == "moto" else []
        return [*compose_command(), "-p", self.project_name, *files, *profile]

    def _env(self) -> dict[str, str]:
        env = {**os.environ, **{k: str(v) for k, v in self.ports.items()}}
        if self.home is not None:
            self.home.mkdir(parents=True, exist_ok=True)
            env["SCONES_HOME"] = str(self.home)
        # The bootstrap writes SCONES_HOME on the host: as this user, who can read and write it.
        env.setdefault("SCONES_UID", str(os.getuid()))
        socket = docker_socket(env.get("DOCKER_HOST"))
        if socket:
            env.setdefault("SCONES_DOCKER_SOCKET", socket)
        return env

    def _run(self, *args: str, timeout_s: float = 300, capture: bool = False) -> str:
        done = subprocess.run(
            [*self._files(), *args], cwd=self.repo_root, env=self._env(), timeout=timeout_s,
            capture_output=capture, text=True,
        )
        if done.returncode != 0:
            tail = (done.stderr or "")[-2000:] if capture else "see the output above"
            raise ComposeFailed(f"docker compose {' '.join(args)} exited {done.returncode}: {tail}")
        return done.stdout or ""

    def up(self, timeout_s: float = UP_TIMEOUT_S):
        """Build, start and wait for the stack; returns the StackState its bootstrap wrote."""
        from scones.model.config import load_settings
        from scones.local.stacks.state import load_state

        require_engine()
        build = {True: ["--build"], False: ["--no-build"], None: []}[self.build]
        self._run("up", *build, "--detach", "--wait", self.model_service, timeout_s=timeout_s)
        env = {**os.environ, **({"SCONES_HOME": str(self.home)} if self.home is not None else {})}
        return load_state(load_settings(env))

    def stop_service(self, service: str) -> None:
        self._run("stop", "--timeout", "10", service)

    def start_service(self, service: str) -> None:
        """Starts a stopped service again and waits for its health check (`--no-deps`: nothing else reruns)."""
        self._run("up", "--no-build", "--no-deps", "--detach", "--wait", service)

    def down(self) -> None:
        """Stop and remove containers, the network and the volumes (LocalStack data, model copy)."""
        self._run("down", "--volumes", "--remove-orphans", "--timeout", "10")

    def logs(self) -> str:
        try:
            return self._run("logs", "--no-color", "--tail", "200", capture=True)
        except (ComposeFailed, subprocess.TimeoutExpired) as error:
            return str(error)


def docker_socket(docker_host: str | None) -> str | None:
    """The engine's socket path on this host for a unix:// DOCKER_HOST (what LocalStack mounts), else None."""
    if docker_host and docker_host.startswith("unix://"):
        return docker_host.removeprefix("unix://")
    return None


def compose_up(emulator: str = "localstack", gpu: bool = False):
    """What `scones up --compose` calls: the stack up, its state in Settings.state_file (SCONES_HOME)."""
    from scones.model.config import load_settings

    return ComposeProject(home=load_settings().home, emulator=emulator, gpu=gpu).up()
