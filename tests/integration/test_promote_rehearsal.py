"""Rehearse a promotion on the embedded stack: scripts/promote.sh creates a real local endpoint,
`scones classify` runs an image through the promoted workflow, scripts/teardown.sh removes it all
and leaves no model server running."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.promote_fixtures import run_promote, run_script

from scones.local.stacks.embedded import endpoint_servers, process_alive

pytestmark = [pytest.mark.integration, pytest.mark.slow]
STACK = "rehearsal"


def _servers(state, endpoint: str) -> list[dict]:
    return [s for e in endpoint_servers(state) if e["EndpointName"] == endpoint for s in e["servers"]]


def test_promote_classify_teardown_on_the_local_stack(embedded_stack, model_artifact, sample_images, tmp_path: Path):
    state = embedded_stack.state
    endpoint = f"{STACK}-image-classifier"
    promoted = run_promote(state.aws_endpoint_url, tmp_path, model_artifact, STACK)
    assert "scones classify" in promoted.stdout
    servers = _servers(state, endpoint)
    assert len(servers) == 1 and process_alive(servers[0]["pid"])

    label = state.class_names[1]
    image = tmp_path / "photo.png"
    image.write_bytes(sample_images[label][0])
    env = {**os.environ, "SCONES_HOME": str(tmp_path), "AWS_ENDPOINT_URL": state.aws_endpoint_url}
    classified = subprocess.run([sys.executable, "-m", "scones.local.cli", "classify", "--json", str(image)],
                                capture_output=True, text=True, env=env, timeout=180)  # fmt: skip
    [line] = [json.loads(text) for text in classified.stdout.splitlines()]
    assert line["outcome"] == "classified" and line["label"] == label, (line, classified.stderr)
    assert f":stateMachine:{STACK}-workflow" in line["execution_arn"].replace(":execution:", ":stateMachine:")

    removed = run_script("teardown.sh", "--stack-name", STACK, "--yes", moto_url=state.aws_endpoint_url, home=tmp_path)
    assert removed.returncode == 0, removed.stderr
    assert f"endpoint {endpoint}" in removed.stdout
    assert not process_alive(servers[0]["pid"]), "teardown left the rehearsal endpoint's model server running"
    assert _servers(state, endpoint) == []
    assert _servers(state, state.endpoint_name), "the stack's own endpoint went away with the rehearsal"
