"""The model server as a real process, called the way the classify Lambda calls SageMaker: boto3."""
from __future__ import annotations

import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import httpx
import numpy as np
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from PIL import Image

from scones.model.artifact import extract_artifact, load_artifact
from fixtures.server_fixtures import ping_status

pytestmark = [pytest.mark.integration]


def image_bytes(mode: str = "RGB", size: tuple[int, int] = (32, 32), fmt: str = "PNG", seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB")
    image = image.convert("P") if mode == "P" else image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def runtime_client(url: str) -> boto3.client:
    config = Config(retries={"total_max_attempts": 1}, max_pool_connections=64, read_timeout=60)
    return boto3.client("sagemaker-runtime", endpoint_url=url, region_name="us-east-1", config=config)


def invoke(client, endpoint: str, body: bytes, content_type: str = "image/png", **extra) -> list[float]:
    response = client.invoke_endpoint(EndpointName=endpoint, ContentType=content_type, Body=body, **extra)
    assert response["ContentType"] == "application/json"
    return json.loads(response["Body"].read())


@pytest.fixture(scope="module")
def in_process(model_artifact: Path, tmp_path_factory: pytest.TempPathFactory):
    return load_artifact(model_artifact, tmp_path_factory.mktemp("in-process"))


def expected_probabilities(in_process, body: bytes, content_type: str = "image/png") -> list[float]:
    handlers = in_process.module
    return handlers.predict_fn(handlers.input_fn(body, content_type), in_process.model)[0].tolist()


def test_png_gives_probabilities_that_match_in_process_predict_fn(model_server, in_process) -> None:
    client = runtime_client(model_server.url)
    body = image_bytes(seed=1)
    response = client.invoke_endpoint(EndpointName=model_server.endpoint_name, ContentType="image/png", Body=body)
    assert response["InvokedProductionVariant"] == "AllTraffic"
    probabilities = json.loads(response["Body"].read())
    assert len(probabilities) == len(in_process.model.class_names)
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(probabilities, expected_probabilities(in_process, body), atol=1e-5)


@pytest.mark.parametrize(("mode", "fmt", "content_type", "size"), [
    ("RGBA", "PNG", "image/png", (32, 32)),
    ("L", "PNG", "image/png", (17, 45)),
    ("P", "PNG", "application/x-image", (64, 64)),
    ("RGB", "JPEG", "image/jpeg", (300, 200)),
])
def test_other_modes_formats_and_sizes_are_classified(model_server, in_process, mode, fmt, content_type, size) -> None:
    body = image_bytes(mode, size, fmt, seed=2)
    probabilities = invoke(runtime_client(model_server.url), model_server.endpoint_name, body, content_type)
    np.testing.assert_allclose(probabilities, expected_probabilities(in_process, body, content_type), atol=1e-5)


def test_garbage_is_a_validation_error_and_the_next_request_succeeds(model_server) -> None:
    client = runtime_client(model_server.url)
    with pytest.raises(ClientError) as raised:
        invoke(client, model_server.endpoint_name, b"\x89PNG definitely not an image")
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert sum(invoke(client, model_server.endpoint_name, image_bytes())) == pytest.approx(1.0, abs=1e-5)


def test_unsupported_content_type_is_a_validation_error(model_server) -> None:
    with pytest.raises(ClientError) as raised:
        invoke(runtime_client(model_server.url), model_server.endpoint_name, b'{"x": 1}', "application/json")
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    assert "content type" in raised.value.response["Error"]["Message"]


def test_body_over_the_sagemaker_limit_is_refused(model_server) -> None:
    client = runtime_client(model_server.url)
    with pytest.raises(ClientError) as raised:
        invoke(client, model_server.endpoint_name, b"\0" * (6_291_456 + 1))
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    assert "6291456" in raised.value.response["Error"]["Message"]
    assert sum(invoke(client, model_server.endpoint_name, image_bytes())) == pytest.approx(1.0, abs=1e-5)


def test_unknown_endpoint_name_is_refused_like_aws(model_server) -> None:
    with pytest.raises(ClientError) as raised:
        invoke(runtime_client(model_server.url), "some-other-endpoint", image_bytes())
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    assert "Endpoint some-other-endpoint" in raised.value.response["Error"]["Message"]


def test_container_route_invocations_answers_like_the_runtime_api(model_server, in_process) -> None:
    body = image_bytes(seed=3)
    response = httpx.post(f"{model_server.url}/invocations", content=body,
                          headers={"Content-Type": "image/png", "Accept": "application/json"})
    assert response.status_code == 200
    assert response.headers["x-Amzn-Invoked-Production-Variant"] == "AllTraffic"
    np.testing.assert_allclose(response.json(), expected_probabilities(in_process, body), atol=1e-5)
    refused = httpx.post(f"{model_server.url}/invocations", content=body,
                         headers={"Content-Type": "image/png", "Accept": "text/csv"})
    assert refused.status_code == 400
    assert refused.headers["x-amzn-ErrorType"] == "ValidationError"
    assert "text/csv" in refused.json()["message"]


def test_ping_is_not_200_until_the_model_has_loaded(start_model_server, model_artifact) -> None:
    server = start_model_server(model_artifact, wait=False, load_delay_s=4)
    deadline = time.monotonic() + 60
    while (status := ping_status(server.url)) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status == 503
    with pytest.raises(ClientError) as raised:
        invoke(runtime_client(server.url), server.endpoint_name, image_bytes())
    assert raised.value.response["Error"]["Code"] == "ModelNotReadyException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    server.wait_ready()
    assert ping_status(server.url) == 200


def test_a_failure_inside_the_model_is_a_model_error(start_model_server, model_artifact, tmp_path) -> None:
    model_dir = extract_artifact(model_artifact, tmp_path / "broken")
    with (model_dir / "code" / "inference.py").open("a") as source:
        source.write("\n\ndef predict_fn(input_data, model):\n    raise RuntimeError('GPU on fire')\n")
    server = start_model_server(model_dir)
    client = runtime_client(server.url)
    for _ in range(2):  # and the server is still there for the second one
        with pytest.raises(ClientError) as raised:
            invoke(client, server.endpoint_name, image_bytes())
        error = raised.value.response
        assert error["Error"]["Code"] == "ModelError"
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
        assert error["OriginalStatusCode"] == 500
        assert "GPU on fire" in error["OriginalMessage"]


@pytest.mark.slow
def test_64_concurrent_requests_are_batched_and_answer_as_sequential_ones(start_model_server, model_artifact) -> None:
    server = start_model_server(model_artifact, max_batch_size=16, max_batch_delay_ms=20)
    client = runtime_client(server.url)
    bodies = [image_bytes(seed=100 + index) for index in range(64)]
    sequential = [invoke(client, server.endpoint_name, body) for body in bodies]
    with ThreadPoolExecutor(max_workers=64) as pool:
        concurrent = list(pool.map(lambda body: invoke(client, server.endpoint_name, body), bodies))
    np.testing.assert_allclose(np.array(concurrent), np.array(sequential), atol=1e-5)
    request_lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    batch_sizes = [line["batch_size"] for line in request_lines if line["method"] == "POST" and line["status"] == 200]
    assert len(batch_sizes) == 128
    assert max(batch_sizes) > 1, "no two requests ever shared a batch"
    assert max(batch_sizes) <= 16
