"""The docker compose stack, for real: `docker compose up -d --wait`, the host's view, `down -v`.

The moto profile runs wherever an engine does (the suite starts its own as root on Debian and
builds the images offline); the workflow scenario suite runs against it too, through the
`compose_stack` fixture. These tests cover what only the compose stack has: the containers'
health checks, the state file the bootstrap wrote for the host, `scones classify` from the
host, data capture into the stack's S3, and that `down -v` leaves nothing. LocalStack's
SFN_MOCK_CONFIG test cases are in test_localstack_mock_cases.py.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from fixtures.compose_fixtures import ComposeStack, bring_up

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(2400)]


def _containers(project: str) -> list[dict]:
    import docker

    client = docker.from_env()
    try:
        found = client.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"})
        return [{"name": c.name, "status": c.status, "health": c.attrs["State"].get("Health", {}).get("Status")}
                for c in found]
    finally:
        client.close()


def test_services_are_healthy_and_the_bootstrap_finished(compose_stack: ComposeStack) -> None:
    containers = {c["name"].split("-")[-2]: c for c in _containers(compose_stack.project.project_name)}
    assert containers["model"]["health"] == "healthy", containers
    assert containers["moto"]["health"] == "healthy", containers


def test_state_file_points_the_host_at_the_stack(compose_stack: ComposeStack) -> None:
    state = compose_stack.state
    assert state.target == "compose"
    assert state.aws_endpoint_url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(f"{state.model_server_url}/ping", timeout=5) as response:
        assert response.status == 200
    s3 = state.client("s3")
    assert s3.head_object(Bucket=state.bucket, Key="models/model.tar.gz")["ContentLength"] > 0


def _classify(stack: ComposeStack, *images: Path) -> tuple[list[dict], int, str]:
    """`scones classify --json` as a user runs it on the host: no AWS settings of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["SCONES_HOME"] = str(stack.home)
    done = subprocess.run([sys.executable, "-m", "scones.local.cli", "classify", "--json", *map(str, images)],
                          capture_output=True, text=True, env=env, timeout=300)
    return [json.loads(line) for line in done.stdout.splitlines()], done.returncode, done.stderr


def test_scones_classify_from_the_host(compose_stack: ComposeStack, sample_images, tmp_path: Path) -> None:
    """The README's `scones classify` after `up`: classified, review and failed outcomes."""
    from scones.local.deploy.stack import function_name

    state = compose_stack.state
    good = tmp_path / "good.png"
    good.write_bytes(sample_images[state.class_names[0]][0])
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    lines, returncode, stderr = _classify(compose_stack, good, bad)
    assert [line["outcome"] for line in lines] == ["classified", "failed"], stderr
    assert lines[0]["label"] == state.class_names[0]
    assert lines[1]["reason"].startswith("NotAnImage")
    assert returncode == 1

    # A half-and-half blend of the two classes: even a sure model's top probability stays below 1.0
    # (a clean sample may round to exactly 1.0 in float32 and pass a threshold of 1.0).
    blend = tmp_path / "blend.png"
    with Image.open(good) as first, Image.open(io.BytesIO(sample_images[state.class_names[1]][0])) as second:
        Image.blend(first.convert("RGB"), second.convert("RGB"), 0.5).save(blend)
    lambda_ = state.client("lambda")
    name = function_name(state.stack_name, "filter_inferences")
    original = lambda_.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
    lambda_.update_function_configuration(FunctionName=name, Environment={"Variables": {**original, "THRESHOLD": "1.0"}})
    try:
        lines, _, stderr = _classify(compose_stack, blend)
    finally:
        lambda_.update_function_configuration(FunctionName=name, Environment={"Variables": original})
    assert [line["outcome"] for line in lines] == ["review"], stderr


def test_data_capture_lands_in_the_stacks_s3(compose_stack: ComposeStack, sample_images) -> None:
    """The model container captures into the emulator's bucket, in SageMaker's key layout."""
    state = compose_stack.state
    state.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=state.endpoint_name, ContentType="image/png", Body=sample_images[state.class_names[1]][0])
    s3 = state.client("s3")
    prefix = f"capture/{state.endpoint_name}/AllTraffic/"
    deadline = time.monotonic() + 60
    while not (listed := s3.list_objects_v2(Bucket=state.bucket, Prefix=prefix).get("Contents", [])):
        assert time.monotonic() < deadline, f"nothing under s3://{state.bucket}/{prefix} after 60 s"
        time.sleep(1)
    body = s3.get_object(Bucket=state.bucket, Key=listed[-1]["Key"])["Body"].read()
    record = json.loads(body.splitlines()[-1])
    assert record["captureData"]["endpointInput"]["data"]
    assert record["captureData"]["endpointOutput"]["data"]


def test_down_v_leaves_nothing(model_artifact: Path, compose_images: bool, tmp_path: Path) -> None:
    """A second, short-lived project: up, then `down -v` removes its containers, network and volumes."""
    import docker

    stack_gen = bring_up("moto", compose_images, tmp_path, model_artifact, name="down-v")
    stack = next(stack_gen)
    name = stack.project.project_name
    assert _containers(name)
    with pytest.raises(StopIteration):
        next(stack_gen)  # runs `down -v`
    client = docker.from_env()
    try:
        label = {"label": f"com.docker.compose.project={name}"}
        assert not client.containers.list(all=True, filters=label)
        assert not client.volumes.list(filters=label)
        assert not client.networks.list(filters=label)
    finally:
        client.close()
