"""`scones up`, `scones status`, `scones down`: the embedded stack from the command line."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from scones.model.config import load_settings

if TYPE_CHECKING:
    from scones.local.stacks.state import StackState


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", "model_path", type=click.Path(exists=True, path_type=Path), default=None,
              help="model.tar.gz (or extracted model dir) to serve. Default: the newest model.tar.gz "
                   "that `scones train` wrote under $SCONES_HOME/model.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="confidence the filter step requires (default $SCONES_THRESHOLD or 0.93).")
@click.option("--region", default=None, help="AWS region the emulated stack reports (default $AWS_REGION or us-east-1).")
@click.option("--lambda-environments", type=click.IntRange(1, 64), default=None,
              help="warm execution environments per Lambda function (default: one per CPU core, 2 to 8). More invocations "
                   "wait for one; raise it for functions that mostly wait (on a network call, a sleep).")
@click.option("--compose", is_flag=True,
              help="Start the docker compose stack instead (LocalStack + model container; needs a Docker engine).")
@click.option("--emulator", type=click.Choice(["localstack", "moto"]), default="localstack", show_default=True,
              help="With --compose: LocalStack 4.14 (no token needed) or the token-free moto profile.")
@click.option("--gpu", is_flag=True, help="With --compose: give the model container the NVIDIA GPU.")
def up(model_path: Path | None, threshold: float | None, region: str | None, lambda_environments: int | None,
       compose: bool, emulator: str, gpu: bool) -> None:
    """Start the embedded stack: a moto server (S3, Lambda, Step Functions, Logs, SageMaker) running
    the Lambdas and the SageMaker endpoint's model server as local processes; then deploy the
    workflow and the endpoint with the same calls `scripts/promote.sh` makes on AWS.

    Everything binds 127.0.0.1 on free ports; logs go to $SCONES_HOME/logs. Stop it with
    `scones down`.
    """  # fmt: skip
    from scones.local.stacks.embedded import ModelNotFound, StackAlreadyRunning, StackStartError, default_model_path, start_stack

    if compose:
        _compose_up(emulator, gpu)
        return
    settings = load_settings()
    try:
        model_path = model_path or default_model_path(settings)
        click.echo(f"starting the embedded stack with {model_path} ...")
        started = start_stack(settings, model_path, threshold=threshold, region=region,
                              lambda_environments=lambda_environments)  # fmt: skip
    except (ModelNotFound, StackAlreadyRunning, StackStartError) as error:
        raise click.ClickException(f"{type(error).__name__}: {error}") from error
    state = started.state
    click.secho(f"stack '{state.stack_name}' ready in {started.seconds_to_ready:.1f} s", fg="green")
    click.echo(f"  AWS endpoint (moto):   {state.aws_endpoint_url}")
    click.echo(f"  SageMaker endpoint:    {state.endpoint_name}  (InvokeEndpoint on the AWS endpoint above)")
    click.echo(f"  bucket:                s3://{state.bucket}")
    click.echo(f"  state machine:         {state.state_machine_arn}")
    click.echo(f"  threshold:             {state.threshold}   classes: {', '.join(state.class_names)}")
    click.echo(f"  logs:                  {settings.home / 'logs'}")
    click.echo("\nTo use it from boto3 or the AWS CLI in this shell:")
    click.echo(f"  export AWS_ENDPOINT_URL={state.aws_endpoint_url}")
    click.echo(f"  export AWS_REGION={state.region} AWS_DEFAULT_REGION={state.region}")
    click.echo("  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing")
    click.echo("\nClassify images with `scones classify IMAGE...`; stop with `scones down`.")


def _compose_up(emulator: str, gpu: bool) -> None:
    from scones.local.stacks.compose import ComposeFailed, compose_up
    from scones.local.stacks.docker_engine import DockerUnavailable

    try:
        state = compose_up(emulator=emulator, gpu=gpu)
    except (ComposeFailed, DockerUnavailable) as error:
        raise click.ClickException(f"{type(error).__name__}: {error}") from error
    click.secho(f"compose stack ready: state machine {state.state_machine_arn}", fg="green")
    click.echo("Classify images with `scones classify IMAGE...`; stop with `docker compose down -v`.")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
def status() -> None:
    """Show the running stack: its processes (alive?) and endpoints (answering?)."""
    from rich.console import Console
    from rich.table import Table

    from scones.local.stacks.embedded import http_answers, process_alive
    from scones.local.stacks.state import StackNotRunning, load_state

    settings = load_settings()
    try:
        state = load_state(settings)
    except StackNotRunning as error:
        raise click.ClickException(str(error)) from error
    table = Table(title=f"stack '{state.stack_name}' ({state.target}, started {state.started_at})")
    table.add_column("component")
    table.add_column("where")
    table.add_column("state")
    healthy = True

    def row(name: str, where: str, ok: bool, detail: str) -> None:
        nonlocal healthy
        healthy &= ok
        table.add_row(name, where, f"[green]{detail}[/green]" if ok else f"[red]{detail}[/red]")

    for name, pid in state.processes.items():
        alive = process_alive(pid)
        row(f"process {name}", f"pid {pid}", alive, "running" if alive else "not running")
    if state.aws_endpoint_url:
        ok = http_answers(f"{state.aws_endpoint_url}/moto-api/") if state.target == "embedded" else http_answers(state.aws_endpoint_url)
        row("AWS endpoint", state.aws_endpoint_url, ok, "answering" if ok else "not answering")
    if state.model_server_url:
        ok = http_answers(f"{state.model_server_url}/ping", 200)
        row("model server", f"{state.model_server_url} ({state.endpoint_name})", ok, "ping 200" if ok else "no ping")
    if state.target == "embedded":
        _endpoint_rows(state, row)
    table.add_row("bucket", f"s3://{state.bucket}", "")
    table.add_row("state machine", state.state_machine_arn, "")
    table.add_row("threshold", str(state.threshold), "")
    Console().print(table)
    if not healthy:
        raise click.ClickException("the stack is not healthy; see the logs in " + str(settings.home / "logs"))


def _endpoint_rows(state: StackState, row: Callable[[str, str, bool, str], None]) -> None:
    """One row per SageMaker endpoint of the embedded stack, and one per model server behind it."""
    from scones.local.stacks.embedded import endpoint_servers, http_answers

    try:
        endpoints = endpoint_servers(state)
    except (OSError, ValueError) as error:
        row("SageMaker endpoints", state.aws_endpoint_url or "", False, f"unknown: {error}")
        return
    for endpoint in endpoints:
        status = endpoint["EndpointStatus"]
        row(f"endpoint {endpoint['EndpointName']}", "SageMaker", status == "InService", status)
        for server in endpoint["servers"]:
            ok = http_answers(f"{server['url']}/ping", 200)
            row(f"  model server {server['variant']}", f"{server['url']} (pid {server['pid']})", ok,
                "ping 200" if ok else "no ping")  # fmt: skip


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
def down() -> None:
    """Stop everything `scones up` started (processes and their ports) and forget the stack."""
    from scones.local.stacks.embedded import StackStartError, stop_stack
    from scones.local.stacks.state import StackNotRunning

    settings = load_settings()
    try:
        stopped = stop_stack(settings)
    except StackNotRunning as error:
        raise click.ClickException(str(error)) from error
    except StackStartError as error:
        raise click.ClickException(f"{type(error).__name__}: {error}") from error
    click.echo(f"stopped: {', '.join(stopped) or 'nothing was running'}")
