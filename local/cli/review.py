"""`scones review`: the web page where a person labels the photos the workflow sent to review.

On a local stack it needs no options (bucket and endpoint from the state file); on AWS give
--bucket, and boto3 finds credentials and region as usual. The same code serves both.
"""
from __future__ import annotations

import getpass
import logging
import sys

import click

from scones.model.config import load_settings


def _stack_session_and_bucket(bucket: str | None):
    """The running local stack's session and bucket, else plain boto3 and --bucket / SCONES_BUCKET."""
    import boto3

    from scones.local.stacks.state import StackNotRunning, load_state

    settings = load_settings()
    try:
        state = load_state(settings)
    except (StackNotRunning, OSError, ValueError):
        return boto3.Session(region_name=settings.region), bucket or settings.bucket
    return state.boto3_session(), bucket or state.bucket


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--bucket", help="Bucket holding review/ and labels/ (default: the running stack's, else SCONES_BUCKET).")
@click.option("--reviewer", default=lambda: getpass.getuser(), show_default="your login name",
              help="Name recorded as workerId in every answer.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but 127.0.0.1 shows the bucket's photos to your network.")
@click.option("--port", default=8090, show_default=True, type=click.IntRange(0, 65535), help="Port to bind; 0 picks a free one.")
@click.option("--second-opinion", is_flag=True,
              help="Also show photos others have answered but you have not (both answers are kept; the last one trains).")
@click.option("--log-level", default="warning", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]))
def review(bucket: str | None, reviewer: str, host: str, port: int, second_opinion: bool, log_level: str) -> None:
    """Serve the review page: the queue oldest first, one click or key per class, undo, progress.

    Each answer is written to s3://BUCKET/labels/ITEM.json (an A2I-like document); answered
    photos leave the queue. It reads only review/, labels/ and the photos review records point
    to in the same bucket, and writes only labels/. Stop it with Ctrl-C.
    """
    import uvicorn

    from scones.local.stacks.embedded import free_port
    from scones.model.review.app import create_app
    from scones.model.review.store import ReviewStore

    session, bucket = _stack_session_and_bucket(bucket)
    if not reviewer.strip():
        raise click.BadParameter("give a reviewer name", param_hint="--reviewer")
    port = port or free_port(host)
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr, format="%(message)s")
    app = create_app(ReviewStore(session.client("s3"), bucket), reviewer.strip(), second_opinion=second_opinion, host=host)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"reviewing s3://{bucket}/review/ as {reviewer.strip()}: open http://{shown}:{port}/  (Ctrl-C stops)")
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
