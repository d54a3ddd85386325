"""`scones demo`: the whole chain on the embedded stack, one step after another.

Data (real photos: --data DIR / SCONES_DATA, else CIFAR-100 when cached or downloadable; the
generated set only as the last resort) → a short training run → `scones up` → every test image through the Step Functions workflow →
accuracy and outcome counts → monitoring report → `scones down`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from scones.model.config import DEFAULT_CLASSES, Settings
from scones.local.workflow_client import Outcome, run_images, stage_images


@dataclass(frozen=True)
class DemoData:
    staged_dir: Path
    generated: bool  # True: the synthetic stand-in, not CIFAR-100 photographs


@dataclass(frozen=True)
class DemoResult:
    outcomes: list[Outcome]
    true_labels: dict[str, str]  # image path → its class

    @property
    def accuracy(self) -> float:
        """Share of images whose predicted label (classified or in review) is the true class."""
        labelled = [o for o in self.outcomes if o.label is not None]
        if not labelled:
            return 0.0
        return sum(o.label == self.true_labels[o.image] for o in labelled) / len(labelled)


def prepare_data(settings: Settings, console: Console, offline: bool, data_dir: Path | None = None) -> DemoData:
    """Real photos first: `data_dir` (our staged layout or the seeds'), then CIFAR-100 if it is cached
    or can be downloaded; the generated stand-in only as the last resort, and it says so."""
    from scones.model import cifar, synth

    if data_dir is not None:
        console.print(f"using the photos in {data_dir}")
        return DemoData(data_dir, generated=False)
    demo_dir = settings.home / "demo"
    if not offline:
        try:
            archive = cifar.download_archive(settings.cache_dir)
        except cifar.CifarError as error:
            console.print(f"[yellow]CIFAR-100 is not available ({error})[/]")
        else:
            summary = cifar.stage_archive(archive, demo_dir / "cifar100", DEFAULT_CLASSES)
            console.print(f"staged CIFAR-100 {', '.join(DEFAULT_CLASSES)} into {summary.out_dir}")
            return DemoData(summary.out_dir, generated=False)
    console.print("[yellow bold]Using the GENERATED data set (shapes, not photographs) in the CIFAR-100 format; "
                  "pass --data DIR (or SCONES_DATA) to use real photos.[/]")
    archive = synth.write_synth_archive(demo_dir / "synth", DEFAULT_CLASSES)
    summary = cifar.stage_archive(archive, demo_dir / "synth", DEFAULT_CLASSES)
    return DemoData(summary.out_dir, generated=True)


# Generated shapes are easy: one network and 12 epochs reach 1.000 there, in a fraction of the time.
GENERATED_DATA_RECIPE = {"epochs": 12, "ensemble": 1}


def train_model(settings: Settings, data: DemoData, epochs: int | None, ensemble: int | None) -> Path:
    """Trains with the full recipe on real photos, a short one on generated shapes; the flags override either."""
    from scones.model import train

    out = settings.home / "demo" / "model"
    flags = ["--data", str(data.staged_dir), "--out", str(out)]
    epochs = epochs or (GENERATED_DATA_RECIPE["epochs"] if data.generated else None)
    ensemble = ensemble or (GENERATED_DATA_RECIPE["ensemble"] if data.generated else None)
    flags += ["--epochs", str(epochs)] if epochs else []
    flags += ["--ensemble", str(ensemble)] if ensemble else []
    args = train.build_parser().parse_args(flags)
    result = train.run(args)
    return result.artifact


def test_images(data: DemoData) -> dict[str, str]:
    """Every test image of the data set, with its true class from the .lst manifest."""
    from scones.model.cifar import find_class_names, read_manifest

    test_dir = data.staged_dir / "test"
    class_names = find_class_names(test_dir, DEFAULT_CLASSES)
    return {_shown(test_dir / path): class_names[label] for _, label, path in read_manifest(test_dir)}


def _shown(path: Path) -> str:
    """Relative to the working directory when inside it (short table rows), else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def write_report(settings: Settings, state, model_path: Path) -> Path:
    """The monitoring report over what the demo just sent (the endpoint captured 100 %)."""
    from scones.model.monitor.cli import default_capture_uri
    from scones.model.monitor.drift import load_baseline
    from scones.model.monitor.report import generate_report, print_summary

    report, html = generate_report(
        state.boto3_session(),
        default_capture_uri(state),
        settings.home / "demo" / "report",
        class_names=state.class_names,
        threshold=state.threshold,
        baseline=load_baseline(model_path),
        state_machine_arn=state.state_machine_arn,
        outcomes_bucket=state.bucket,
    )
    print_summary(report)
    return html


def classify_through_workflow(state, images: list[str], on_done: Callable[[Outcome], None]) -> list[Outcome]:
    session = state.boto3_session()
    refs = stage_images(session.client("s3"), state.bucket, images, prefix="demo/")
    return run_images(session.client("stepfunctions"), state.state_machine_arn, refs, timeout_s=600, on_done=on_done)
