"""scripts/sagemaker_train.sh: the CreateTrainingJob request moto receives, and the source bundle."""
from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import boto3
import pytest
from fixtures.promote_fixtures import moto_requests, operation_of, request_body, run_script  # noqa: F401

from scones.local.aws.sagemaker_training import METRIC_DEFINITIONS, build_source_bundle

pytestmark = pytest.mark.slow


def _staged(root: Path) -> Path:
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    for channel in ("train", "test"):
        (root / channel / "bicycle_s_000001.png").write_bytes(b"\x89PNG fake")
        (root / channel / f"{channel}.lst").write_text("0\t0\tbicycle_s_000001.png\n")
        (root / channel / "classes.json").write_text('["bicycle", "motorcycle"]')
    return root


def test_metric_regexes_read_the_training_script_epoch_line() -> None:
    from scones.model.train import EpochMetrics, SplitReport

    line = EpochMetrics(epoch=7, train_loss=0.4123, train_acc=0.812, val_loss=0.331, val_acc=0.865, seconds=12.03).line()
    test_line = SplitReport("test", 200, 0.21, 0.93, 0.031, 0.012,
                            {"auto_routed_share": 0.81, "auto_routed_accuracy": 0.9877}).line()
    values = {m["Name"]: float(found.group(1)) for m in METRIC_DEFINITIONS
              if (found := re.search(m["Regex"], f"{line}\n{test_line}"))}
    assert values == {"epoch": 7, "train_loss": 0.4123, "train_acc": 0.812, "val_loss": 0.331, "val_acc": 0.865,
                      "epoch_seconds": 12.03, "test_acc": 0.93, "test_ece_after": 0.012, "test_auto_routed": 0.81,
                      "test_auto_routed_acc": 0.9877}


def test_source_bundle_runs_our_trainer() -> None:
    bundle = build_source_bundle()
    assert bundle == build_source_bundle()  # deterministic: same code, same S3 key
    with tarfile.open(fileobj=io.BytesIO(bundle)) as tar:
        names = set(tar.getnames())
        entry = tar.extractfile("sagemaker_entry.py").read().decode()
    assert {"scones/model/train.py", "scones/model/code/inference.py", "scones/model/artifact.py"} <= names
    assert "from scones.model.train import main" in entry


def test_source_bundle_imports_the_trainer_without_the_installed_package(tmp_path: Path) -> None:
    """What SageMaker does: extract sourcedir.tar.gz, run the entry script; nothing else of ours exists."""
    with tarfile.open(fileobj=io.BytesIO(build_source_bundle())) as tar:
        tar.extractall(tmp_path, filter="data")
    probe = (
        "import sys\n"
        "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "import scones.model.train as train\n"
        f"assert train.__file__.startswith({str(tmp_path)!r}), train.__file__\n"
        "train.build_parser()\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_training_job_request(moto_server: str, moto_session: boto3.Session, tmp_path: Path, moto_requests) -> None:
    bucket = "train1-bucket"
    moto_session.client("s3").create_bucket(Bucket=bucket)
    data = _staged(tmp_path / "data")
    result = run_script(
        "sagemaker_train.sh", "--data", str(data), "--bucket", bucket, "--stack-name", "train1", "--spot",
        "--epochs", "3", "--hyperparameter", "lr=0.1", "--job-name", "train1-job", "--poll", "0",
        moto_url=moto_server, home=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    creates = [e for e in moto_requests() if operation_of(e) == "CreateTrainingJob"]
    assert len(creates) == 1
    sent = request_body(creates[0])
    spec = sent["AlgorithmSpecification"]
    assert spec["TrainingImage"] == "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.6.0-gpu-py312"
    assert spec["MetricDefinitions"] == METRIC_DEFINITIONS
    assert sent["ResourceConfig"]["InstanceType"] == "ml.g4dn.xlarge"
    assert sent["EnableManagedSpotTraining"] is True
    assert sent["StoppingCondition"]["MaxWaitTimeInSeconds"] >= sent["StoppingCondition"]["MaxRuntimeInSeconds"]
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in sent["InputDataConfig"]}
    assert channels == {"train": f"s3://{bucket}/data/train/", "test": f"s3://{bucket}/data/test/"}
    hp = {k: json.loads(v) for k, v in sent["HyperParameters"].items()}
    assert hp["epochs"] == "3" and hp["lr"] == "0.1"
    assert hp["sagemaker_program"] == "sagemaker_entry.py"
    assert hp["sagemaker_submit_directory"].startswith(f"s3://{bucket}/code/")
    assert sent["OutputDataConfig"]["S3OutputPath"] == f"s3://{bucket}/training/"
    assert {"Key": "scones:stack", "Value": "train1"} in sent["Tags"]

    s3 = moto_session.client("s3")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert {"data/train/train.lst", "data/test/test.lst", "data/train/bicycle_s_000001.png"} <= keys
    described = moto_session.client("sagemaker").describe_training_job(TrainingJobName="train1-job")
    assert described["RoleArn"].endswith(":role/train1-sagemaker-training-role")
    assert result.stdout.strip().endswith("model.tar.gz")


def test_missing_channels_are_a_named_error(moto_server: str, tmp_path: Path) -> None:
    result = run_script("sagemaker_train.sh", "--data", str(tmp_path), "--bucket", "b",
                        moto_url=moto_server, home=tmp_path)
    assert result.returncode != 0
    assert "StagedDataMissing" in result.stderr


def test_the_seeds_manifests_beside_the_folders_go_inside_their_channels(tmp_path: Path) -> None:
    from scones.local.aws.sagemaker_training import channel_files

    root = _staged(tmp_path / "seeds")
    for channel in ("train", "test"):
        (root / channel / f"{channel}.lst").rename(root / f"{channel}.lst")
        (root / channel / "classes.json").unlink()
    keys = {channel: [key for _, key in files] for channel, files in channel_files(root).items()}
    assert keys == {"train": ["bicycle_s_000001.png", "train.lst"], "test": ["bicycle_s_000001.png", "test.lst"]}
