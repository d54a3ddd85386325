"""The CUDA paths: mixed-precision training and batched serving on the GPU.

Skipped (with the reason) on machines without a CUDA GPU, such as CI.
"""
from __future__ import annotations

import json

import boto3
import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.integration,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch"),
]


def test_training_on_cuda_converges_and_the_artifact_serves_on_cpu(staged_data, tmp_path, sample_images):
    from scones.model.artifact import load_artifact
    from scones.model.train import build_parser, run

    args = build_parser().parse_args(
        ["--data", str(staged_data), "--out", str(tmp_path), "--device", "cuda", "--epochs", "8", "--quiet"]
    )
    result = run(args)
    assert result.test.accuracy >= 0.95

    loaded = load_artifact(result.artifact, tmp_path / "cpu")
    module, model = loaded.module, loaded.model
    model.net.to("cpu")
    model.device = torch.device("cpu")
    for index, images in enumerate(sample_images.values()):
        probabilities = module.predict_fn(module.input_fn(images[0], "image/png"), model)
        assert int(probabilities.argmax()) == index


def test_server_on_cuda_answers_like_the_cpu(start_model_server, model_artifact, sample_images):
    from scones.model.artifact import load_artifact

    gpu = start_model_server(model_artifact, device="cuda", max_batch_size=32)
    runtime = boto3.client("sagemaker-runtime", region_name="us-east-1", endpoint_url=gpu.url)
    loaded = load_artifact(model_artifact)
    for images in sample_images.values():
        body = runtime.invoke_endpoint(EndpointName=gpu.endpoint_name, ContentType="image/png", Body=images[0])
        served = json.loads(body["Body"].read())
        expected = loaded.module.predict_fn(loaded.module.input_fn(images[0], "image/png"), loaded.model)
        assert served == pytest.approx(expected[0].tolist(), abs=1e-3)
