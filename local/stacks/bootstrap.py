"""The one bootstrap of an emulated stack: a model, the deployed workflow, and the state file.

`python -m scones.local.stacks.bootstrap` is the compose stack's one-shot `bootstrap` service (against
LocalStack, or moto in the `moto` profile) and runs the same way against any moto server. It
deploys with `scones.local.deploy.stack.deploy_stack` — the code `scones up` and `scripts/promote.sh`
use — so nothing here knows which emulator it talks to beyond the endpoint URL.

Steps: find or train a model (`--model`, else $SCONES_HOME/model.tar.gz, else a small model
trained on generated data and cached there), deploy the stack, upload the artifact to
s3://BUCKET/models/model.tar.gz, unpack it where the model server reads it, write the state file.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import boto3

from scones.model.config import Settings, load_settings
from scones.local.deploy.stack import DeployError, StackConfig, StackOutputs, deploy_stack
from scones.local.stacks.state import StackState, new_state, save_state
from scones.model.artifact import InvalidArtifact, artifact_class_names, extract_artifact

MODEL_KEY = "models/model.tar.gz"
CACHED_MODEL_NAME = "model.tar.gz"


class BootstrapError(RuntimeError):
    """The stack could not be bootstrapped; the message says which step and why."""


@dataclass(frozen=True)
class SmallModelRecipe:
    """A quick model for a stack nobody gave one: generated shapes, a narrow net, a few epochs."""

    train_per_class: int = 200
    test_per_class: int = 40
    epochs: int = 4
    width: int = 8
    seed: int = 0


@dataclass(frozen=True)
class BootstrapPlan:
    target: str  # "compose" for containers, "embedded" when bootstrapping a local moto server
    aws_endpoint_url: str | None  # what the bootstrap itself talks to
    public_aws_endpoint_url: str | None  # what the host (`scones classify`) talks to
    sagemaker_runtime_url: str  # what the classify Lambda calls (AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME)
    public_model_url: str
    model: Path | None = None
    model_dir: Path | None = None  # where to unpack the artifact for the model server
    recipe: SmallModelRecipe = SmallModelRecipe()


def class_names_of(artifact: Path) -> tuple[str, ...]:
    """The classes a model.tar.gz was trained on (model.json), without loading torch."""
    try:
        return artifact_class_names(artifact)
    except InvalidArtifact as error:
        raise BootstrapError(f"{error}: not a Scones model artifact") from error


def train_small_model(out_dir: Path, class_names: tuple[str, ...], recipe: SmallModelRecipe) -> Path:
    """Generates a data set and trains on it; returns out_dir/model.tar.gz."""
    from scones.model import cifar, synth
    from scones.model.train import main as train_main

    with tempfile.TemporaryDirectory(prefix="scones-bootstrap-data-") as data_dir:
        archive = synth.write_synth_archive(
            Path(data_dir), class_names, recipe.train_per_class, recipe.test_per_class, recipe.seed
        )
        cifar.stage_archive(archive, Path(data_dir), class_names)
        # The training script treats SM_MODEL_DIR as "inside a SageMaker job" and would skip
        # packing model.tar.gz; this is a local run, whatever the container's environment says.
        os.environ.pop("SM_MODEL_DIR", None)
        os.environ.pop("SM_TRAINING_ENV", None)
        code = train_main([
            "--data", data_dir, "--out", str(out_dir), "--epochs", str(recipe.epochs),
            "--width", str(recipe.width), "--ensemble", "1", "--seed", str(recipe.seed), "--device", "auto",
        ])
    artifact = out_dir / "model.tar.gz"
    if code != 0 or not artifact.is_file():
        raise BootstrapError(f"training the small model failed (exit {code}); see the output above")
    return artifact


def resolve_model(plan: BootstrapPlan, settings: Settings, default_classes: tuple[str, ...]) -> Path:
    """The artifact to deploy: the one given, the cached one, or a freshly trained one (then cached)."""
    if plan.model is not None:
        if not plan.model.is_file():
            raise BootstrapError(f"--model {plan.model}: no such file")
        return plan.model
    cached = settings.home / CACHED_MODEL_NAME
    if cached.is_file():
        print(f"using the cached model {cached}", flush=True)
        return cached
    print(f"no model given and none at {cached}: training a small one on generated data", flush=True)
    settings.home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="scones-bootstrap-model-") as out_dir:
        trained = train_small_model(Path(out_dir), default_classes, plan.recipe)
        shutil.copyfile(trained, cached)
    return cached


def unpack_for_server(artifact: Path, model_dir: Path) -> Path:
    """Replaces model_dir's contents with the artifact's (a shared volume may hold an older model)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    for child in model_dir.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    return extract_artifact(artifact, model_dir)


def bootstrap(session: boto3.Session, settings: Settings, plan: BootstrapPlan) -> StackState:
    """Model, deploy, upload, unpack, state file — in that order; returns the saved state."""
    from scones.model.config import DEFAULT_CLASSES

    artifact = resolve_model(plan, settings, DEFAULT_CLASSES)
    class_names = class_names_of(artifact)
    config = StackConfig(
        stack_name=settings.stack_name,
        bucket=settings.bucket,
        endpoint_name=settings.endpoint_name,
        class_names=class_names,
        threshold=settings.threshold,
        lambda_environment={"AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": plan.sagemaker_runtime_url},
    )
    try:
        outputs: StackOutputs = deploy_stack(session, config)
    except DeployError as error:
        raise BootstrapError(f"deploying stack {settings.stack_name}: {error}") from error
    session.client("s3").upload_file(str(artifact), outputs.bucket, MODEL_KEY)
    print(f"deployed {outputs.state_machine_arn}; model at s3://{outputs.bucket}/{MODEL_KEY}", flush=True)
    if plan.model_dir is not None:
        unpack_for_server(artifact, plan.model_dir)
        print(f"model unpacked into {plan.model_dir} for the model server", flush=True)
    state = new_state(
        settings, plan.target, class_names=class_names, aws_endpoint_url=plan.public_aws_endpoint_url,
        model_server_url=plan.public_model_url, state_machine_arn=outputs.state_machine_arn, bucket=outputs.bucket,
    )
    save_state(settings, state)
    print(f"wrote {settings.state_file}", flush=True)
    return state


def build_parser() -> argparse.ArgumentParser:
    recipe = SmallModelRecipe()
    parser = argparse.ArgumentParser(
        prog="python -m scones.local.stacks.bootstrap",
        description="Deploy the Scones workflow into an emulator (LocalStack or moto) with the same deploy "
        "code as `scones up`, provide a model (train a small one if none is given) and write the state file "
        "that `scones classify` reads. Stack name, bucket, endpoint and threshold come from SCONES_* variables.",
    )
    parser.add_argument("--target", choices=("compose", "embedded"), default="compose",
                        help="recorded in the state file (default: %(default)s)")
    parser.add_argument("--aws-endpoint-url", required=True, help="emulator URL this process deploys to")
    parser.add_argument("--public-aws-endpoint-url", default=None,
                        help="emulator URL as seen from the host, for the state file (default: --aws-endpoint-url)")
    parser.add_argument("--sagemaker-runtime-url", required=True,
                        help="model server URL as the Lambdas see it (AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME)")
    parser.add_argument("--public-model-url", default=None,
                        help="model server URL as seen from the host (default: --sagemaker-runtime-url)")
    parser.add_argument("--model", type=Path, default=None,
                        help="model.tar.gz to deploy (default: $SCONES_HOME/model.tar.gz, trained if absent)")
    parser.add_argument("--model-dir", type=Path, default=Path("/opt/ml/model"),
                        help="unpack the model here for the model server; 'none' to skip (default: %(default)s)")
    parser.add_argument("--train-epochs", type=int, default=recipe.epochs, help="small model: epochs (default: %(default)s)")
    parser.add_argument("--train-per-class", type=int, default=recipe.train_per_class,
                        help="small model: generated training images per class (default: %(default)s)")
    parser.add_argument("--test-per-class", type=int, default=recipe.test_per_class,
                        help="small model: generated test images per class (default: %(default)s)")
    parser.add_argument("--width", type=int, default=recipe.width, help="small model: network width (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = load_settings()
    plan = BootstrapPlan(
        target=args.target,
        aws_endpoint_url=args.aws_endpoint_url,
        public_aws_endpoint_url=args.public_aws_endpoint_url or args.aws_endpoint_url,
        sagemaker_runtime_url=args.sagemaker_runtime_url,
        public_model_url=args.public_model_url or args.sagemaker_runtime_url,
        model=args.model,
        model_dir=None if str(args.model_dir) == "none" else args.model_dir,
        recipe=SmallModelRecipe(args.train_per_class, args.test_per_class, args.train_epochs, args.width),
    )
    # Every client of this process talks to the emulator; the Lambdas get their own URLs.
    os.environ["AWS_ENDPOINT_URL"] = args.aws_endpoint_url
    session = boto3.Session(region_name=settings.region)
    try:
        bootstrap(session, settings, plan)
    except BootstrapError as error:
        print(f"bootstrap failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
