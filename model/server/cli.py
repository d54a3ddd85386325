"""`scones serve` / `python -m scones.model.server`: the model server's command line.

The defaults follow SageMaker's container contract (port from SAGEMAKER_BIND_TO_PORT, model
from SM_MODEL_DIR or /opt/ml/model), except the host: 127.0.0.1 unless told otherwise (the
container's `serve` script passes 0.0.0.0).
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

DEFAULT_MODEL_DIR = "/opt/ml/model"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", "model_path", envvar="SM_MODEL_DIR", default=DEFAULT_MODEL_DIR, show_default=True,
              type=click.Path(exists=True, path_type=Path),
              help="model.tar.gz or its extracted folder (env SM_MODEL_DIR).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; use 0.0.0.0 only inside a container.")
@click.option("--port", envvar="SAGEMAKER_BIND_TO_PORT", default=8080, show_default=True, type=int,
              help="Port to bind (env SAGEMAKER_BIND_TO_PORT); 0 picks a free one.")
@click.option("--endpoint-name", default="scones-image-classifier", show_default=True, envvar="SCONES_ENDPOINT_NAME",
              help="Name answered on POST /endpoints/{name}/invocations (env SCONES_ENDPOINT_NAME).")
@click.option("--variant", default="AllTraffic", show_default=True,
              help="Production variant reported in x-Amzn-Invoked-Production-Variant and capture keys.")
@click.option("--max-batch-size", default=32, show_default=True, type=click.IntRange(min=1),
              help="Most requests answered by one predict_fn call.")
@click.option("--max-batch-delay-ms", default=5.0, show_default=True, type=click.FloatRange(min=0),
              help="Longest a batch waits to fill while more requests are arriving.")
@click.option("--max-queue-size", default=256, show_default=True, type=click.IntRange(min=1),
              help="Requests held (arriving, queued or running) before new ones get 503 ServiceUnavailable.")
@click.option("--decode-threads", default=1, show_default=True, type=click.IntRange(min=1),
              help="Threads running input_fn while the previous batch is in predict_fn.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="auto picks CUDA when present.")
@click.option("--capture-s3-uri", default=None,
              help="s3://bucket/prefix for SageMaker-style data capture (off when absent).")
@click.option("--capture-percent", default=100.0, show_default=True, type=click.FloatRange(0, 100),
              help="Percentage of requests captured.")
@click.option("--load-delay-s", default=0.0, type=click.FloatRange(min=0), hidden=True,
              help="Wait before loading the model (tests observe the not-ready state).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def serve(
    model_path: Path, host: str, port: int, endpoint_name: str, variant: str, max_batch_size: int,
    max_batch_delay_ms: float, max_queue_size: int, decode_threads: int, device: str, capture_s3_uri: str | None, capture_percent: float,
    load_delay_s: float, log_level: str,
) -> None:
    """Serve a model.tar.gz with SageMaker's container and Runtime API contracts.

    GET /ping, POST /invocations and POST /endpoints/NAME/invocations, so that
    boto3's sagemaker-runtime client works with AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME
    pointing here. The model loads in the background; /ping answers 200 once it has.
    """
    import uvicorn

    from .app import create_app
    from .batching import DynamicBatcher
    from .capture import CaptureDestination, DataCapture, InvalidCaptureDestination
    from .model_runner import DecodedRequest, InvocationResponse, ModelRunner

    logging.basicConfig(level=log_level.upper(), stream=sys.stderr, format="%(message)s")
    capture = None
    if capture_s3_uri:
        try:
            destination = CaptureDestination.parse(capture_s3_uri)
        except InvalidCaptureDestination as error:
            raise click.BadParameter(str(error), param_hint="--capture-s3-uri") from error
        capture = DataCapture(destination, endpoint_name, variant, percent=capture_percent)
    runner = ModelRunner(model_path, device=device, load_delay_s=load_delay_s)
    batcher: DynamicBatcher[DecodedRequest, InvocationResponse] = DynamicBatcher(
        runner.run_decoded, max_batch_size=max_batch_size, max_batch_delay_ms=max_batch_delay_ms,
        max_queue_size=max_queue_size, worker_initializer=runner.init_predict_thread,
    )
    app = create_app(runner, batcher, endpoint_name, variant=variant, capture=capture, decode_threads=decode_threads)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False, timeout_graceful_shutdown=10)
