"""`scones serve` / `python -m scones.model.server`: the model server's command line.

The defaults follow SageMaker's container contract (port from SAGEMAKER_BIND_TO_PORT, model
from SM_MODEL_DIR or /opt/ml/model), except the host: 127.0.0.1 unless told otherwise (the
container's `serve` script passes 0.0.0.0).
"""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from starlette.types import ASGIApp

DEFAULT_MODEL_DIR = "/opt/ml/model"
SETTINGS_ENV = "SCONES_MODEL_SERVER_SETTINGS"  # the parent's options, for the worker processes of --workers


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
@click.option("--decode-threads", default=1, show_default=True, type=click.IntRange(min=0),
              help="Threads running input_fn while the previous batch is in predict_fn; 0 runs it on the event loop "
                   "(two thread hops less a request: cheaper for small images on few cores).")
@click.option("--torch-threads", default=None, type=click.IntRange(min=1),
              help="Intra-op threads of predict_fn [default: torch's, one per core].")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Server processes sharing the port, each with its own model and batcher: for a GPU whose "
                   "forward pass outruns one Python event loop. Batches are split among them.")
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
def serve(model_path: Path, host: str, port: int, workers: int, log_level: str, **options: Any) -> None:
    """Serve a model.tar.gz with SageMaker's container and Runtime API contracts.

    GET /ping, POST /invocations and POST /endpoints/NAME/invocations, so that
    boto3's sagemaker-runtime client works with AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME
    pointing here. The model loads in the background; /ping answers 200 once it has.
    """
    import uvicorn

    settings = {"model_path": str(model_path), "log_level": log_level, **options}
    if options["capture_s3_uri"]:
        from .capture import CaptureDestination, InvalidCaptureDestination

        try:
            CaptureDestination.parse(options["capture_s3_uri"])
        except InvalidCaptureDestination as error:
            raise click.BadParameter(str(error), param_hint="--capture-s3-uri") from error
    served: Any = f"{__name__}:app_from_environment"
    if workers == 1:
        served = build_app(settings)
    else:  # each worker process builds its own app from the settings, as uvicorn's factory
        os.environ[SETTINGS_ENV] = json.dumps(settings)
    # proxy_headers off: nothing here reads the client's address, and uvicorn's middleware for it costs every request.
    uvicorn.run(served, host=host, port=port, log_level=log_level, access_log=False, timeout_graceful_shutdown=10,
                factory=workers > 1, workers=workers, proxy_headers=False)  # fmt: skip


def app_from_environment() -> ASGIApp:
    """The app of one of several worker processes, from the settings the parent left in the environment."""
    return build_app(json.loads(os.environ[SETTINGS_ENV]))


def build_app(settings: dict[str, Any]) -> ASGIApp:
    """The model runner, batcher, capture and routes for one server process."""
    from .app import create_app
    from .batching import DynamicBatcher
    from .capture import CaptureDestination, DataCapture
    from .model_runner import DecodedRequest, InvocationResponse, ModelRunner

    logging.basicConfig(level=settings["log_level"].upper(), stream=sys.stderr, format="%(message)s")
    endpoint_name, variant = settings["endpoint_name"], settings["variant"]
    capture = None
    if settings["capture_s3_uri"]:
        destination = CaptureDestination.parse(settings["capture_s3_uri"])
        capture = DataCapture(destination, endpoint_name, variant, percent=settings["capture_percent"])
    runner = ModelRunner(Path(settings["model_path"]), device=settings["device"], load_delay_s=settings["load_delay_s"],
                         torch_threads=settings["torch_threads"])  # fmt: skip
    batcher: DynamicBatcher[DecodedRequest, InvocationResponse] = DynamicBatcher(
        runner.run_decoded, max_batch_size=settings["max_batch_size"], max_batch_delay_ms=settings["max_batch_delay_ms"],
        max_queue_size=settings["max_queue_size"], worker_initializer=runner.init_predict_thread,
    )
    return create_app(runner, batcher, endpoint_name, variant=variant, capture=capture,
                      decode_threads=settings["decode_threads"])  # fmt: skip
