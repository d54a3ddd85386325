"""A SageMaker training job that runs OUR model/train.py in script mode on a GPU instance.

The source bundle is the `scones.model` package plus a two-line entry script, so the job runs
exactly the code `scones train` runs locally; hyperparameters become `--key value` arguments
and the metric definitions read the script's `key=value` epoch lines.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from scones.local.aws.images import pytorch_image_uri
from scones.local.aws.waiter import wait_for_status
from scones.model.config import load_settings
from scones.local.aws.sagemaker_roles import STACK_TAG, ensure_role, training_role_name, training_role_policy

DEFAULT_TRAINING_INSTANCE = "ml.g4dn.xlarge"
DATA_PREFIX, CODE_PREFIX, OUTPUT_PREFIX = "data", "code", "training"
CHANNELS = ("train", "test")
ENTRY_POINT = "sagemaker_entry.py"
ENTRY_SOURCE = '''"""SageMaker script-mode entry point: the same trainer as `scones train`."""
import sys

from scones.model.train import main

sys.exit(main())
'''
# The training script's per-epoch line: `epoch=3 train_loss=0.4123 train_acc=0.8120
# val_loss=0.3310 val_acc=0.8650 epoch_seconds=12.03` (model/train.py EpochMetrics.line), and its
# closing test line `test_acc=0.9300 ... test_auto_routed=0.8100 test_auto_routed_acc=0.9877` (SplitReport.line).
METRIC_DEFINITIONS = [
    {"Name": name, "Regex": rf"\b{name}=([0-9.]+)"}
    for name in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "epoch_seconds",
                 "test_acc", "test_ece_after", "test_auto_routed", "test_auto_routed_acc")
]
# Runtime dependencies of scones.model.train beyond the PyTorch training image.
SOURCE_REQUIREMENTS = "tqdm\n"
# The modules the trainer imports (scones.model.train → artifact, cifar, training_data, calibration, network_setup,
# code.inference, scones.model.config); server/, monitor/ and scones.local stay out of the bundle.
SOURCE_MODULES = (
    "model/__init__.py", "model/train.py", "model/artifact.py", "model/cifar.py",
    "model/training_data.py", "model/calibration.py", "model/network_setup.py",
    "model/code/__init__.py", "model/code/inference.py", "model/config.py",
    # --include-reviewed: label documents → extra training samples
    "model/review/__init__.py", "model/review/documents.py", "model/review/training.py",
)


class TrainingJobFailed(RuntimeError):
    """The training job ended Failed or Stopped; the message carries SageMaker's FailureReason."""


class StagedDataMissing(FileNotFoundError):
    """The data directory lacks the train/ or test/ channel of `scones data stage`."""


@dataclass(frozen=True)
class TrainingJobSpec:
    job_name: str
    stack_name: str
    bucket: str
    region: str
    role_arn: str
    image_uri: str
    source_s3_uri: str  # s3://bucket/code/<sha>/sourcedir.tar.gz
    instance_type: str = DEFAULT_TRAINING_INSTANCE
    use_spot: bool = False
    max_run_s: int = 3600
    max_wait_s: int = 7200  # spot only: how long to wait for capacity, including max_run_s
    volume_gb: int = 30
    hyperparameters: dict[str, str] = field(default_factory=dict)

    def channel_uri(self, channel: str) -> str:
        return f"s3://{self.bucket}/{DATA_PREFIX}/{channel}/"

    @property
    def output_uri(self) -> str:
        return f"s3://{self.bucket}/{OUTPUT_PREFIX}/"

    @property
    def model_artifact_uri(self) -> str:
        return f"{self.output_uri}{self.job_name}/output/model.tar.gz"


def script_mode_hyperparameters(spec: TrainingJobSpec) -> dict[str, str]:
    """JSON-encoded values, as the SageMaker SDK sends them; the sagemaker_* keys drive script mode."""
    script_mode = {
        "sagemaker_program": ENTRY_POINT,
        "sagemaker_submit_directory": spec.source_s3_uri,
        "sagemaker_region": spec.region,
        "sagemaker_container_log_level": 20,
    }
    return {key: json.dumps(value) for key, value in {**spec.hyperparameters, **script_mode}.items()}


def training_job_request(spec: TrainingJobSpec) -> dict[str, Any]:
    """The CreateTrainingJob request for `spec` (a pure function, so tests can read it)."""
    stopping = {"MaxRuntimeInSeconds": spec.max_run_s}
    if spec.use_spot:
        stopping["MaxWaitTimeInSeconds"] = max(spec.max_wait_s, spec.max_run_s)
    return {
        "TrainingJobName": spec.job_name,
        "RoleArn": spec.role_arn,
        "AlgorithmSpecification": {
            "TrainingImage": spec.image_uri,
            "TrainingInputMode": "File",
            "MetricDefinitions": METRIC_DEFINITIONS,
            "EnableSageMakerMetricsTimeSeries": True,
        },
        "HyperParameters": script_mode_hyperparameters(spec),
        "InputDataConfig": [
            {
                "ChannelName": channel,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": spec.channel_uri(channel),
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "InputMode": "File",
            }
            for channel in CHANNELS
        ],
        "OutputDataConfig": {"S3OutputPath": spec.output_uri},
        "ResourceConfig": {"InstanceType": spec.instance_type, "InstanceCount": 1, "VolumeSizeInGB": spec.volume_gb},
        "StoppingCondition": stopping,
        "EnableManagedSpotTraining": spec.use_spot,
        "Tags": [{"Key": STACK_TAG, "Value": spec.stack_name}],
    }


def build_source_bundle() -> bytes:
    """sourcedir.tar.gz: the trainer's scones modules plus the entry script; byte-identical for identical code."""
    import scones.model

    roots = {"model": Path(scones.model.__file__).parent}
    files = {}
    for name in SOURCE_MODULES:
        package, relative = name.split("/", 1)
        files[f"scones/{name}"] = (roots[package] / relative).read_bytes()
    files[ENTRY_POINT] = ENTRY_SOURCE.encode()
    files["requirements.txt"] = SOURCE_REQUIREMENTS.encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(files[name]), 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    return gzip.compress(raw.getvalue(), mtime=0)


def channel_files(data_dir: Path) -> dict[str, list[tuple[Path, str]]]:
    """Every file of the train/ and test/ channels (images, .lst manifest, classes.json), with its key
    inside the channel. The seeds' manifests beside the folders (DIR/train.lst) go inside their channel."""
    from scones.model.cifar import CifarError, find_manifest

    found = {}
    for channel in CHANNELS:
        folder = data_dir / channel
        if not folder.is_dir():
            raise StagedDataMissing(f"{folder} is missing: stage the data first (`scones data stage` or `scones data synth`)")
        files = [(p, p.relative_to(folder).as_posix()) for p in sorted(folder.rglob("*")) if p.is_file()]
        try:
            manifest = find_manifest(folder)
        except CifarError as error:
            raise StagedDataMissing(str(error)) from error
        if manifest.parent != folder:
            files.append((manifest, manifest.name))
        found[channel] = files
    return found


def upload_channels(
    s3: Any, data_dir: Path, bucket: str, *, on_file: Callable[[], None] = lambda: None
) -> dict[str, str]:
    """Upload the data to s3://bucket/data/{train,test}/; returns the channel URIs."""
    uris = {}
    for channel, files in channel_files(data_dir).items():
        for path, relative in files:
            s3.upload_file(str(path), bucket, f"{DATA_PREFIX}/{channel}/{relative}")
            on_file()
        uris[channel] = f"s3://{bucket}/{DATA_PREFIX}/{channel}/"
    return uris


def upload_source(s3: Any, bucket: str, bundle: bytes) -> str:
    key = f"{CODE_PREFIX}/{hashlib.sha256(bundle).hexdigest()[:16]}/sourcedir.tar.gz"
    s3.put_object(Bucket=bucket, Key=key, Body=bundle)
    return f"s3://{bucket}/{key}"


def wait_for_training_job(
    sm: Any, job_name: str, *, on_status: Callable[[str], None], poll_s: float = 30.0, timeout_s: float = 4 * 3600
) -> dict[str, Any]:
    """Poll until Completed; TrainingJobFailed on Failed/Stopped (or when it outlasts timeout_s)."""
    return wait_for_status(
        lambda: sm.describe_training_job(TrainingJobName=job_name), status_key="TrainingJobStatus", done="Completed",
        failed=("Failed", "Stopped"), what=f"training job {job_name}",
        on_status=lambda job: on_status(f"{job['TrainingJobStatus']} / {job.get('SecondaryStatus', '')}"),
        poll_s=poll_s, timeout_s=timeout_s, failed_error=TrainingJobFailed, timeout_error=TrainingJobFailed,
    )  # fmt: skip


def default_job_name(stack_name: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return re.sub(r"[^a-zA-Z0-9-]", "-", f"{stack_name}-train-{stamp}")[:63]


def parse_hyperparameters(pairs: tuple[str, ...]) -> dict[str, str]:
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--hyperparameter")
        parsed[key] = value
    return parsed


@click.command("sagemaker-train")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Staged data set (from `scones data stage` or `scones data synth`), with train/ and test/.")
@click.option("--bucket", required=True, help="S3 bucket for data, source bundle and model output (must exist).")
@click.option("--stack-name", default=None, help="Tag value and role-name prefix [default: SCONES_STACK or scones].")
@click.option("--region", default=None, help="AWS region [default: AWS_REGION or us-east-1].")
@click.option("--instance-type", default=DEFAULT_TRAINING_INSTANCE, show_default=True, help="Training instance (GPU by default).")
@click.option("--spot/--no-spot", default=False, show_default=True, help="Managed spot training (cheaper, may wait for capacity).")
@click.option("--max-run", "max_run_s", default=3600, show_default=True, help="Seconds the job may train.")
@click.option("--max-wait", "max_wait_s", default=7200, show_default=True, help="Spot only: seconds to wait for capacity plus training.")
@click.option("--epochs", default=30, show_default=True, help="Passed to train.py --epochs.")
@click.option("--batch-size", default=128, show_default=True, help="Passed to train.py --batch-size.")
@click.option("--width", default=64, show_default=True, help="Passed to train.py --width (network width).")
@click.option("--hyperparameter", "extra", multiple=True, metavar="KEY=VALUE", help="Any other train.py flag, e.g. lr=0.1.")
@click.option("--image", default=None, help="Training image URI [default: AWS PyTorch training image for the region].")
@click.option("--job-name", default=None, help="[default: STACK-train-TIMESTAMP]")
@click.option("--skip-upload", is_flag=True, help="The data is already under s3://BUCKET/data/.")
@click.option("--no-wait", is_flag=True, help="Return once the job is created.")
@click.option("--poll", "poll_s", default=30.0, show_default=True, help="Seconds between status checks.")
def sagemaker_train(
    data_dir: Path, bucket: str, stack_name: str | None, region: str | None, instance_type: str, spot: bool,
    max_run_s: int, max_wait_s: int, epochs: int, batch_size: int, width: int, extra: tuple[str, ...],
    image: str | None, job_name: str | None, skip_upload: bool, no_wait: bool, poll_s: float,
) -> None:
    """Train the classifier as a SageMaker training job (script mode, our model/train.py).

    Uploads DATA's train/ and test/ channels and the source bundle to BUCKET, creates a
    least-privilege execution role, starts the job on a GPU instance with the AWS PyTorch
    training image, waits with progress, and prints where model.tar.gz landed (feed it to
    `scripts/promote.sh --model`). Costs: ml.g4dn.xlarge is about $0.74/hour on demand.
    """
    import boto3
    from rich.console import Console

    console = Console(stderr=True)
    settings = load_settings()
    stack_name = stack_name or settings.stack_name
    session = boto3.Session(region_name=region or settings.region)
    region = session.region_name
    s3, sm, iam = session.client("s3"), session.client("sagemaker"), session.client("iam")
    account = session.client("sts").get_caller_identity()["Account"]
    image = image or pytorch_image_uri(region, "training", instance_type)
    hyperparameters = {"epochs": str(epochs), "batch-size": str(batch_size), "width": str(width), **parse_hyperparameters(extra)}
    if not skip_upload:
        total = sum(len(files) for files in channel_files(data_dir).values())
        with console.status("") as status:
            done = 0

            def advance() -> None:
                nonlocal done
                done += 1
                status.update(f"uploading channels {done}/{total}")

            upload_channels(s3, data_dir, bucket, on_file=advance)
    source = upload_source(s3, bucket, build_source_bundle())
    policy = training_role_policy(bucket=bucket, read_prefixes=[DATA_PREFIX, CODE_PREFIX], output_prefix=OUTPUT_PREFIX,
                                  image_uri=image, region=region, account=account)
    role_arn, _ = ensure_role(iam, training_role_name(stack_name), policy, stack_name)
    spec = TrainingJobSpec(job_name=job_name or default_job_name(stack_name), stack_name=stack_name, bucket=bucket,
                           region=region, role_arn=role_arn, image_uri=image, source_s3_uri=source,
                           instance_type=instance_type, use_spot=spot, max_run_s=max_run_s, max_wait_s=max_wait_s,
                           hyperparameters=hyperparameters)
    sm.create_training_job(**training_job_request(spec))
    console.print(f"started training job [bold]{spec.job_name}[/] on {instance_type} ({image})")
    if no_wait:
        click.echo(spec.model_artifact_uri)
        return
    with console.status("waiting for the training job") as status:
        job = wait_for_training_job(sm, spec.job_name, poll_s=poll_s,
                                    on_status=lambda text: status.update(f"{spec.job_name}: {text}"))
    billable = job.get("BillableTimeInSeconds")
    if billable is not None:
        console.print(f"billable seconds: {billable}")
    click.echo(job["ModelArtifacts"]["S3ModelArtifacts"])


if __name__ == "__main__":
    sagemaker_train()
