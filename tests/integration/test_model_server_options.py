"""The server's throughput options (--decode-threads 0, --workers, --torch-threads) answer as the default does."""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from botocore.exceptions import ClientError

from test_model_server import expected_probabilities, image_bytes, in_process, invoke, runtime_client

pytestmark = [pytest.mark.integration]
__all__ = ["in_process"]  # the module fixture, shared with test_model_server


def worker_processes(pid: int) -> list[int]:
    """The server's uvicorn workers: its spawned children (not multiprocessing's resource tracker)."""
    children = [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [child for child in children if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]


def assert_serves_like_in_process(server, in_process) -> None:
    """Concurrent requests answer as predict_fn does in-process; a bad body is still a ValidationError."""
    client = runtime_client(server.url)
    bodies = [image_bytes(seed=200 + index) for index in range(24)]
    with ThreadPoolExecutor(max_workers=24) as pool:
        answers = list(pool.map(lambda body: invoke(client, server.endpoint_name, body), bodies))
    expected = [expected_probabilities(in_process, body) for body in bodies]
    np.testing.assert_allclose(np.array(answers), np.array(expected), atol=1e-5)
    with pytest.raises(ClientError) as refused:
        invoke(client, server.endpoint_name, b"not an image")
    assert refused.value.response["Error"]["Code"] == "ValidationError"


def test_decoding_on_the_event_loop_answers_like_the_decode_thread(start_model_server, model_artifact, in_process) -> None:
    server = start_model_server(model_artifact, decode_threads=0, torch_threads=1)
    assert_serves_like_in_process(server, in_process)


@pytest.mark.slow
def test_worker_processes_share_the_port_and_stop_with_the_server(start_model_server, model_artifact, in_process) -> None:
    server = start_model_server(model_artifact, workers=2, torch_threads=1)
    workers = worker_processes(server.process.pid)
    assert len(workers) == 2, f"expected 2 worker processes under {server.process.pid}, found {workers}"
    deadline = time.monotonic() + 60  # /ping answered by one worker; the other may still be loading
    while time.monotonic() < deadline:
        try:
            assert_serves_like_in_process(server, in_process)
            break
        except ClientError as error:
            if error.response["Error"]["Code"] != "ModelNotReadyException":
                raise
            time.sleep(0.5)
    served_by = {json.loads(line).get("pid") for line in server.log().splitlines() if line.startswith("{")}
    # One listening socket shared by the workers: the kernel gives each new connection to whichever accepts first.
    assert served_by and served_by <= set(workers), f"requests answered by {served_by}, workers {workers}"
    server.stop()
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()], "a worker outlived the server"
