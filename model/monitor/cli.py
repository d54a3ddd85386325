"""`scones monitor report`: data capture and workflow outcomes → HTML report, PNGs, terminal table.

Defaults come from the running stack's state file when there is one, so on a local stack
`scones monitor report` needs no options; on AWS pass --capture and --state-machine-arn.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

# Where every target's endpoint writes capture (local/embedded.py, local/promote.py): s3://{bucket}/capture/{endpoint}.
CAPTURE_PREFIX = "capture"
EXIT_DRIFT = 3


def running_stack():
    """The running stack's state, or None when no stack was started here."""
    try:
        from scones.model.config import load_settings
        from scones.local.stacks.state import StackNotRunning, load_state
    except ImportError:
        return None
    try:
        return load_state(load_settings())
    except (StackNotRunning, OSError, ValueError):
        return None


def default_capture_uri(state) -> str | None:
    if state is None:
        return None
    explicit = getattr(state, "capture_s3_uri", None)
    return explicit or f"s3://{state.bucket}/{CAPTURE_PREFIX}/{state.endpoint_name}"


@click.group("monitor")
def monitor() -> None:
    """Reports from the endpoint's data capture and the workflow's outcomes."""


@monitor.command("report")
@click.option("--capture", "capture_uri", metavar="S3_URI",
              help="Data capture location, s3://bucket/prefix/endpoint[/variant] "
                   "(default: the running stack's, s3://BUCKET/capture/ENDPOINT).")
@click.option("--since", metavar="WHEN", help="Only traffic since then: a duration (30m, 24h, 7d) or an ISO 8601 time. "
                                              "Default: everything captured.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("monitor-report"),
              show_default=True, help="Directory for report.html, summary.json and the PNG charts.")
@click.option("--baseline", "baseline_path", type=click.Path(exists=True, path_type=Path),
              help="model.tar.gz (or its baseline.json) holding the training-time baseline "
                   "(default: the model the running local stack serves); without one there is no drift verdict.")
@click.option("--threshold", type=click.FloatRange(0, 1),
              help="Confidence threshold (default: the stack's, else the baseline's, else SCONES_THRESHOLD).")
@click.option("--state-machine-arn", help="Workflow whose executions to count (default: the running stack's).")
@click.option("--bucket", "outcomes_bucket", help="Bucket with the review/ and failed/ records (default: the stack's).")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.01, show_default=True,
              help="Significance level of the drift tests.")
@click.option("--fail-on-drift", is_flag=True, help=f"Exit with status {EXIT_DRIFT} when drift is flagged (for CI or cron).")
def report(capture_uri, since, out_dir, baseline_path, threshold, state_machine_arn, outcomes_bucket, alpha,
           fail_on_drift) -> None:
    """Write a self-contained HTML report (with its PNG charts) and print a summary table.

    It shows max confidence over time with the threshold line, the confidence histogram,
    the class mix and share below threshold over time, request volume, workflow outcomes,
    drift against the training baseline (KS and chi-square tests) and a gallery of the
    lowest-confidence captured images.
    """
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from scones.model.config import DEFAULT_CLASSES, load_settings

    from .capture_reader import MonitorError, parse_since
    from .drift import load_baseline
    from .report import generate_report, print_summary

    settings = load_settings()
    state = running_stack()
    capture_uri = capture_uri or default_capture_uri(state)
    if not capture_uri:
        raise click.UsageError("no running stack here: pass --capture s3://bucket/prefix/endpoint")
    if baseline_path is None and getattr(state, "model_path", None) and Path(state.model_path).exists():
        baseline_path = Path(state.model_path)
    if fail_on_drift and baseline_path is None:
        raise click.UsageError("--fail-on-drift needs --baseline (model.tar.gz or baseline.json)")
    try:
        since_time = parse_since(since)
        baseline = load_baseline(baseline_path) if baseline_path else None
        class_names = (baseline.class_names if baseline else None) or getattr(state, "class_names", None) or DEFAULT_CLASSES
        threshold = threshold if threshold is not None else (
            getattr(state, "threshold", None) or (baseline.threshold if baseline else settings.threshold))
        session = state.boto3_session() if state is not None else boto3.Session(region_name=settings.region)
        result, html_path = generate_report(
            session, capture_uri, out_dir,
            class_names=class_names, threshold=threshold, baseline=baseline,
            state_machine_arn=state_machine_arn or getattr(state, "state_machine_arn", None),
            outcomes_bucket=outcomes_bucket or getattr(state, "bucket", None),
            since=since_time, alpha=alpha, show_progress=sys.stderr.isatty(),
        )
    except MonitorError as exc:
        raise click.ClickException(str(exc)) from None
    except (ClientError, BotoCoreError) as exc:
        raise click.ClickException(f"cannot read {capture_uri}: {exc}") from None
    print_summary(result)
    click.echo(f"report: {html_path.resolve()}")
    if fail_on_drift and result.drifted:
        click.echo(f"drift flagged: exiting with status {EXIT_DRIFT}", err=True)
        sys.exit(EXIT_DRIFT)
