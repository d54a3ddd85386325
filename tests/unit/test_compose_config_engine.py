"""Engine detection answers with a reason, and only Compose v2 is accepted."""
from __future__ import annotations

import stat
from pathlib import Path

import pytest

from scones.local.stacks import docker_engine


def test_unreachable_engine_is_reported_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")  # discard port: nothing answers
    check = docker_engine.check_engine(timeout_s=1)
    assert not check.available
    assert "no reachable Docker engine" in check.reason
    with pytest.raises(docker_engine.DockerUnavailable, match="no reachable Docker engine"):
        docker_engine.require_engine()


def _fake_compose(directory: Path, version_line: str) -> None:
    script = directory / "docker-compose"
    script.write_text(f"#!/bin/sh\necho '{version_line}'\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_compose_v1_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_compose(tmp_path, "docker-compose version 1.29.2, build unknown")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(docker_engine.sys, "executable", str(tmp_path / "python"))
    with pytest.raises(docker_engine.DockerUnavailable, match="no Compose v2"):
        docker_engine.compose_command()


def test_compose_v2_standalone_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_compose(tmp_path, "Docker Compose version v5.6.1")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(docker_engine.sys, "executable", str(tmp_path / "no-venv" / "python"))
    assert docker_engine.compose_command() == [str(tmp_path / "docker-compose")]


def test_the_virtualenvs_compose_v2_beats_v1_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Debian's docker-compose (v1) on PATH must not hide the v2 the dev extras put in .venv/bin."""
    (tmp_path / "usr-bin").mkdir()
    (tmp_path / "venv-bin").mkdir()
    _fake_compose(tmp_path / "usr-bin", "docker-compose version 1.29.2, build unknown")
    _fake_compose(tmp_path / "venv-bin", "Docker Compose version v5.6.1")
    monkeypatch.setenv("PATH", str(tmp_path / "usr-bin"))
    monkeypatch.setattr(docker_engine.sys, "executable", str(tmp_path / "venv-bin" / "python"))
    assert docker_engine.compose_command() == [str(tmp_path / "venv-bin" / "docker-compose")]


@pytest.mark.parametrize(("docker_host", "socket"), [
    ("unix:///tmp/scones-docker/docker.sock", "/tmp/scones-docker/docker.sock"),
    ("tcp://127.0.0.1:2375", None),
    (None, None),
])
def test_localstack_mounts_the_socket_docker_host_names(docker_host: str | None, socket: str | None) -> None:
    from scones.local.stacks.compose import docker_socket

    assert docker_socket(docker_host) == socket
