"""The pre-warmed model server (`scones up`'s first endpoint): once claimed it is the server a new process
would be: the same /ping, the same answers, the same refusal of a bad artifact; it is never claimed
into an environment it did not import under."""
from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from scones.local.emulator.model_server_standby import StandbyModelServer
from scones.local.emulator.ports import free_port
from scones.local.emulator.sagemaker_endpoints import _ping, server_environment

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _standby(tmp_path: Path) -> StandbyModelServer:
    return StandbyModelServer.spawn(server_environment("http://127.0.0.1:9", "us-east-1", {}), tmp_path / "standby.log")


def _claimed(standby: StandbyModelServer, artifact: Path, tmp_path: Path) -> tuple[str, Path]:
    port, log_path = free_port(), tmp_path / "server.log"
    args = ["--model", str(artifact), "--host", "127.0.0.1", "--port", str(port), "--endpoint-name", "standby-test"]
    env = server_environment("http://127.0.0.1:9", "us-east-1", {"SAGEMAKER_PROGRAM": "inference.py"})
    assert standby.claim(args, env, log_path) is standby.process
    return f"http://127.0.0.1:{port}", log_path


def _ping_until_answered(url: str, standby: StandbyModelServer, timeout_s: float = 120) -> tuple[int | None, str, bytes]:
    deadline = time.monotonic() + timeout_s
    while (answer := _ping(url))[0] is None or answer[1] == "ModelNotReady":
        assert standby.process.poll() is None, "the claimed standby exited"
        assert time.monotonic() < deadline, "the claimed standby never answered /ping"
        time.sleep(0.05)
    return answer


def test_a_claimed_standby_serves_the_artifact_with_its_own_log(model_artifact, sample_images, tmp_path):
    standby = _standby(tmp_path)
    try:
        url, log_path = _claimed(standby, model_artifact, tmp_path)
        assert _ping_until_answered(url, standby)[0] == 200
        png = next(iter(sample_images.values()))[0]
        request = urllib.request.Request(f"{url}/invocations", data=png, headers={"Content-Type": "image/png"})
        with urllib.request.urlopen(request, timeout=30) as response:
            probabilities = json.loads(response.read())
        assert len(probabilities) == 2 and abs(sum(probabilities) - 1) < 1e-3
        assert "model loaded from" in log_path.read_text(), "the server's log did not go to the claim's log file"
    finally:
        standby.process.terminate()
        standby.process.wait(timeout=30)


def test_a_claimed_standby_refuses_a_bad_artifact_as_a_new_server_does(tmp_path):
    bad = tmp_path / "model.tar.gz"
    bad.write_bytes(b"this is not a gzip tarball")
    standby = _standby(tmp_path)
    try:
        url, _ = _claimed(standby, bad, tmp_path)
        status, error_type, _ = _ping_until_answered(url, standby)
        assert (status, error_type) == (503, "ModelUnavailable"), "a bad artifact was not refused as a new server refuses it"
    finally:
        standby.process.terminate()
        standby.process.wait(timeout=30)


def test_a_standby_is_not_claimed_into_another_import_time_environment(model_artifact, tmp_path):
    standby = _standby(tmp_path)
    env = server_environment("http://127.0.0.1:9", "us-east-1", {"OMP_NUM_THREADS": "2"})
    assert standby.claim(["--model", str(model_artifact)], env, tmp_path / "server.log") is None
    assert standby.process.poll() is not None, "a refused standby was left running"


def test_an_unclaimed_standby_stops(tmp_path):
    standby = _standby(tmp_path)
    standby.stop()
    assert standby.process.poll() is not None
