"""`scones classify` and `scones demo`: images in, one outcome per image out."""
from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from scones.model.config import load_settings
from scones.local.workflow_client import Outcome, WorkflowError, expand_inputs, run_images, stage_images

CAPTURE_FLUSH_WAIT_S = 3.0
OUTCOME_STYLE = {"classified": "green", "review": "yellow", "failed": "red"}


def classify_with_stack(
    inputs: Sequence[str], *, timeout_s: float, quiet: bool, console: Console
) -> list[Outcome]:
    """Upload what is local, run every image through the stack the state file names."""
    from scones.local.stacks.state import load_state

    state = load_state(load_settings())
    session = state.boto3_session()
    images = expand_inputs(inputs)
    s3 = session.client("s3")
    refs = stage_images(s3, state.bucket, images)
    with Progress(
        TextColumn("[bold]classifying"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
        transient=True,
    ) as progress:
        task = progress.add_task("executions", total=len(refs))
        return run_images(
            session.client("stepfunctions"),
            state.state_machine_arn,
            refs,
            timeout_s=timeout_s,
            on_done=lambda _: progress.advance(task),
        )


def outcome_table(outcomes: Sequence[Outcome]) -> Table:
    table = Table(title="Workflow outcomes")
    for column in ("image", "label", "confidence", "outcome", "execution"):
        table.add_column(column, overflow="fold")
    for o in outcomes:
        outcome_text = o.outcome if not o.reason else f"{o.outcome}: {o.reason}"
        table.add_row(
            o.image,
            o.label or "-",
            "-" if o.confidence is None else f"{o.confidence:.4f}",
            f"[{OUTCOME_STYLE[o.outcome]}]{outcome_text}[/]",
            o.execution_arn.rsplit(":", 1)[-1],
        )
    return table


def outcome_counts(outcomes: Sequence[Outcome]) -> dict[str, int]:
    counts = Counter(o.outcome for o in outcomes)
    return {kind: counts.get(kind, 0) for kind in ("classified", "review", "failed")}


@click.command()
@click.argument("images", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a table.")
@click.option("--timeout", "timeout_s", default=300.0, show_default=True, help="Seconds to wait for all executions.")
def classify(images: tuple[str, ...], as_json: bool, timeout_s: float) -> None:
    """Run IMAGES (local files, directories of images, or s3://bucket/key URIs) through the workflow.

    Local files are uploaded to the stack's bucket under uploads/; each image gets its own
    Step Functions execution. (A photo put under incoming/ starts an execution by itself.) Prints image, label, confidence, outcome (classified, review,
    or failed with the reason) and the execution. Exit code 0 only if no image failed.
    The stack is the one in the state file (`scones up`, compose, or `scripts/promote.sh`).
    """
    console = Console(stderr=as_json)
    from scones.local.stacks.state import StackNotRunning

    try:
        outcomes = classify_with_stack(images, timeout_s=timeout_s, quiet=as_json, console=console)
    except (WorkflowError, StackNotRunning) as error:
        raise click.ClickException(str(error)) from error
    if as_json:
        for outcome in outcomes:
            click.echo(json.dumps(outcome.to_json()))
    else:
        console.print(outcome_table(outcomes))
        counts = outcome_counts(outcomes)
        console.print(", ".join(f"{n} {kind}" for kind, n in counts.items()))
    sys.exit(1 if any(o.outcome == "failed" for o in outcomes) else 0)


@click.command()
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Training epochs per network (default: the full recipe's 40 on real photos, 12 on generated shapes).")
@click.option("--ensemble", type=click.IntRange(min=1), default=None,
              help="Networks trained and averaged (default: the full recipe's 3 on real photos, 1 on generated shapes).")
@click.option("--threshold", type=float, default=None, help="Filter threshold (default: SCONES_THRESHOLD or 0.93).")
@click.option("--offline", is_flag=True, help="Do not try to download CIFAR-100; use the generated data set.")
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), envvar="SCONES_DATA",
              default=None, help="Real photos to use: a staged folder or the seeds' layout (train/, test/, "
              "train.lst, test.lst) [env: SCONES_DATA].")
@click.option("--keep", is_flag=True, help="Leave the stack running afterwards (stop it with `scones down`).")
def demo(epochs: int | None, ensemble: int | None, threshold: float | None, offline: bool, data_dir: Path | None,
         keep: bool) -> None:
    """Run the whole chain: data, training, `scones up`, every test image through the workflow, report, `scones down`.

    Uses real photos when it has them: --data DIR (or SCONES_DATA), else CIFAR-100 when it is cached
    in $SCONES_HOME/cache or can be downloaded; a generated data set in the same format only as the
    last resort (it says which). Everything lives under $SCONES_HOME (./.scones).
    """
    import time

    from scones.local.cli import demo as steps
    from scones.local.stacks.embedded import StackAlreadyRunning, start_stack, stop_model_server, stop_stack

    settings = load_settings()
    console = Console()
    began = time.monotonic()

    console.rule("[bold]1/5 data")
    data = steps.prepare_data(settings, console, offline, data_dir)
    console.rule("[bold]2/5 training")
    artifact = steps.train_model(settings, data, epochs, ensemble)
    console.print(f"model: {artifact}")
    console.rule("[bold]3/5 scones up")
    try:
        started = start_stack(settings, artifact, threshold=threshold)
    except StackAlreadyRunning as error:
        raise click.ClickException(str(error)) from error
    state = started.state
    console.print(f"stack ready in {started.seconds_to_ready:.1f} s: state machine {state.state_machine_arn}")
    try:
        console.rule("[bold]4/5 classify the test images through Step Functions")
        truth = steps.test_images(data)
        with Progress(TextColumn("[bold]executions"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as progress:  # fmt: skip
            task = progress.add_task("executions", total=len(truth))
            outcomes = steps.classify_through_workflow(state, list(truth), lambda _: progress.advance(task))
        console.print(outcome_table(outcomes))
        console.rule("[bold]5/5 monitoring report and summary")
        if keep:
            time.sleep(CAPTURE_FLUSH_WAIT_S)  # the model server flushes its capture buffer every 2 s
        else:
            stop_model_server(settings)  # flushes the capture buffer on shutdown
        report = steps.write_report(settings, state, artifact)
        result = steps.DemoResult(outcomes, truth)
        counts = outcome_counts(outcomes)
        console.print(
            f"{len(outcomes)} images ({'GENERATED data' if data.generated else 'CIFAR-100'}): "
            f"{counts['classified']} classified, {counts['review']} sent to review, {counts['failed']} failed; "
            f"accuracy of predicted labels {result.accuracy:.1%}; threshold {state.threshold}"
        )
        console.print(f"monitoring report: {report}")
    finally:
        if keep:
            console.print("stack left running (--keep): try `scones status`, `scones classify IMAGE`, `scones down`")
        else:
            stop_stack(settings)
            console.print("stack stopped (scones down)")
    console.print(f"demo finished in {time.monotonic() - began:.0f} s")
    if counts["failed"]:
        sys.exit(1)
