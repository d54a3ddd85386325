"""`scones up` → `status` → `down` as a user runs them: real processes, nothing left behind."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from fixtures.stack_fixtures import embedded_settings

from botocore.exceptions import ClientError

from scones.local.stacks.embedded import endpoint_servers, port_is_listening, start_model_server, stop_model_server
from scones.local.stacks.state import load_state

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def scones(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "SCONES_HOME": str(home)}
    command = [str(Path(sys.executable).parent / "scones"), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def pid_exists(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_up_status_down_leaves_no_process_and_no_port(model_artifact: Path, tmp_path: Path):
    home = tmp_path / "home"
    up = scones(home, "up", "--model", str(model_artifact), "--threshold", "0.9")
    assert up.returncode == 0, up.stderr + up.stdout
    assert "export AWS_ENDPOINT_URL=http://127.0.0.1:" in up.stdout
    assert "AWS_DEFAULT_REGION=us-east-1" in up.stdout
    assert "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME" not in up.stdout  # InvokeEndpoint goes to AWS_ENDPOINT_URL too
    state = json.loads((home / "stack.json").read_text())
    server_urls: list[str] = []
    try:
        endpoints = endpoint_servers(load_state(embedded_settings(home)))
        assert [(e["EndpointName"], e["EndpointStatus"]) for e in endpoints] == [("scones-image-classifier", "InService")]
        server_urls = [server["url"] for server in endpoints[0]["servers"]]
        for server in endpoints[0]["servers"]:  # the model server `up` started before the endpoint existed
            assert b"model_server_standby" in Path(f"/proc/{server['pid']}/cmdline").read_bytes(), server
        assert state["target"] == "embedded" and state["threshold"] == 0.9
        assert state["state_machine_arn"].startswith("arn:aws:states:")
        assert all(pid_exists(pid) for pid in state["processes"].values())
        session = boto3.Session(region_name=state["region"])
        sfn = session.client("stepfunctions", endpoint_url=state["aws_endpoint_url"])
        assert sfn.describe_state_machine(stateMachineArn=state["state_machine_arn"])["status"] == "ACTIVE"

        again = scones(home, "up", "--model", str(model_artifact))
        assert again.returncode != 0 and "scones down" in again.stderr

        status = scones(home, "status")
        assert status.returncode == 0, status.stderr + status.stdout
        assert "ping 200" in status.stdout and "answering" in status.stdout
    finally:
        down = scones(home, "down")
    assert down.returncode == 0, down.stderr + down.stdout
    assert not (home / "stack.json").exists()
    for pid in state["processes"].values():
        assert not pid_exists(pid), f"process {pid} survived `scones down`"
    for url in (state["aws_endpoint_url"], *server_urls):
        assert not port_is_listening(port(url)), f"{url} still listening after `scones down`"
    leftovers = subprocess.run(["pgrep", "-f", str(home)], capture_output=True, text=True).stdout.split()
    assert not leftovers, f"processes still running from {home}: {leftovers}"

    status = scones(home, "status")
    assert status.returncode != 0 and "scones up" in status.stderr


def test_up_without_a_model_says_how_to_get_one(tmp_path: Path):
    result = scones(tmp_path / "empty-home", "up")
    assert result.returncode != 0
    assert "scones train" in result.stderr and "scones demo" in result.stderr


def test_endpoint_server_stopped_then_replaced_behind_the_same_endpoint(embedded_stack, sample_images):
    assert embedded_stack.seconds_to_ready > 0
    state = embedded_stack.state
    runtime = state.client("sagemaker-runtime")
    png = sample_images[state.class_names[0]][0]
    [before] = [s for e in endpoint_servers(state) if e["EndpointName"] == state.endpoint_name for s in e["servers"]]
    stop_model_server(embedded_stack.settings)
    assert not port_is_listening(port(before["url"]))
    try:
        with pytest.raises(ClientError) as raised:
            runtime.invoke_endpoint(EndpointName=state.endpoint_name, ContentType="image/png", Body=png)
        assert raised.value.response["Error"]["Code"] == "ServiceUnavailable"
    finally:
        start_model_server(embedded_stack.settings)
    [after] = [s for e in endpoint_servers(state) if e["EndpointName"] == state.endpoint_name for s in e["servers"]]
    assert after["pid"] != before["pid"] and port_is_listening(port(after["url"]))
    answer = runtime.invoke_endpoint(EndpointName=state.endpoint_name, ContentType="image/png", Body=png)
    assert len(json.loads(answer["Body"].read())) == len(state.class_names)
