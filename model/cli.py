"""`scones data stage|synth` and `scones train`. Torch is imported only inside the commands."""
from __future__ import annotations

import os
from pathlib import Path

import click

from scones.model.config import DEFAULT_CLASSES, FAKE_CREDENTIALS, load_settings


def _classes(value: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    if len(names) < 2:
        raise click.BadParameter("give at least two comma-separated fine-label names")
    return names


def _default_data_dir(name: str) -> Path:
    return load_settings().home / "data" / name


def _report_stage(summary, generated_note: str | None) -> None:
    for split, counts in summary.counts.items():
        shown = ", ".join(f"{name} {count}" for name, count in counts.items())
        click.echo(f"{split}: {sum(counts.values())} images ({shown})")
    click.echo(f"staged in {summary.out_dir} (classes.json, train/train.lst, test/test.lst)")
    if generated_note:
        click.secho(f"NOTE: these images are GENERATED, not CIFAR-100 photographs ({generated_note})", fg="yellow")


def _upload(out_dir: Path, bucket: str | None, prefix: str) -> None:
    if not bucket:
        return
    import boto3

    from .cifar import upload_staged

    summary = upload_staged(boto3.Session(), out_dir, bucket, prefix)
    click.echo(f"{summary.uri}: uploaded {summary.uploaded}, unchanged {summary.skipped}")


@click.group()
def data() -> None:
    """Prepare training data: CIFAR-100 classes (`stage`) or a generated stand-in (`synth`)."""


@data.command()
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder to stage into (default: $SCONES_HOME/data/cifar100).")
@click.option("--classes", default=",".join(DEFAULT_CLASSES), show_default=True,
              help="Comma-separated CIFAR-100 fine-label names; their order gives the label ids.")
@click.option("--archive", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Use this cifar-100-python.tar.gz instead of downloading it.")
@click.option("--md5", default=None, help="Require this MD5 of --archive (downloads always check the official one).")
@click.option("--url", default=None, help="Download from this mirror instead of the dataset's home page (same MD5).")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="Where the download is kept (default: $SCONES_HOME/cache).")
@click.option("--bucket", default=None, help="Also upload the staged folder to this S3 bucket (AWS_ENDPOINT_URL honoured).")
@click.option("--prefix", default="", help="Key prefix in --bucket.")
def stage(out: Path | None, classes: str, archive: Path | None, md5: str | None, url: str | None,
          cache_dir: Path | None, bucket: str | None, prefix: str) -> None:
    """Download CIFAR-100 (MD5-checked), write the chosen classes as RGB PNGs with .lst manifests.

    Offline, download the archive elsewhere and pass --archive PATH. Re-running, and
    re-uploading with --bucket, only writes what changed.
    """
    from . import cifar

    names = _classes(classes)
    out = out or _default_data_dir("cifar100")
    try:
        if archive is None:
            archive = cifar.download_archive(cache_dir or load_settings().cache_dir, url or cifar.CIFAR100_URL)
        elif md5:
            cifar.verify_md5(archive, md5)
        summary = cifar.stage_archive(archive, out, names)
    except cifar.CifarError as error:
        raise click.ClickException(f"{type(error).__name__}: {error}") from error
    _report_stage(summary, summary.generated_note)
    _upload(out, bucket, prefix)


@data.command()
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for the archive and the staged set (default: $SCONES_HOME/data/synth).")
@click.option("--classes", default=",".join(DEFAULT_CLASSES), show_default=True, help="Comma-separated fine-label names.")
@click.option("--train-per-class", type=click.IntRange(1), default=200, show_default=True)
@click.option("--test-per-class", type=click.IntRange(1), default=40, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--bucket", default=None, help="Also upload the staged folder to this S3 bucket.")
@click.option("--prefix", default="", help="Key prefix in --bucket.")
def synth(out: Path | None, classes: str, train_per_class: int, test_per_class: int, seed: int,
          bucket: str | None, prefix: str) -> None:
    """Generate a learnable stand-in for CIFAR-100 (shapes, not photos) in the real archive format, and stage it.

    For offline demos and tests: the archive goes through the same loader as real data.
    """
    from . import cifar, synth as synthesis

    names = _classes(classes)
    out = out or _default_data_dir("synth")
    try:
        archive = synthesis.write_synth_archive(out, names, train_per_class, test_per_class, seed)
        summary = cifar.stage_archive(archive, out, names)
    except (cifar.CifarError, synthesis.UnknownClassName) as error:
        raise click.ClickException(f"{type(error).__name__}: {error}") from error
    click.secho(f"GENERATED data set (not real CIFAR-100 images): {archive}", fg="yellow")
    _report_stage(summary, summary.generated_note)
    _upload(out, bucket, prefix)


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True}, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def train(args: tuple[str, ...]) -> None:
    """Train the classifier (SageMaker script mode); `scones train --help` lists the hyperparameters."""
    from .train import main

    if any(arg.startswith("--include-reviewed") for arg in args):
        _point_boto3_at_local_stack()

    raise SystemExit(main(list(args)))


def _point_boto3_at_local_stack() -> None:
    """`--include-reviewed` beside a running local stack: read its bucket, as `scones up`'s export lines would."""
    from .monitor.cli import running_stack

    state = running_stack()
    if state is None or os.environ.get("AWS_ENDPOINT_URL") or state.target == "aws":
        return
    os.environ.update(FAKE_CREDENTIALS, AWS_ENDPOINT_URL=state.aws_endpoint_url)
    click.echo(f"reading reviewed labels through the local stack at {state.aws_endpoint_url}", err=True)

