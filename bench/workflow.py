"""Embedded-stack figures next to MiniStack's on the same workload, as ratios.

`scones up` → ready; warm per-image latency of the whole chain (Step Functions → serialize →
classify (model server) → filter) as `scones classify` sees it (run_images, its default polling);
the execution itself (DescribeExecution startDate → stopDate); a burst of concurrent executions, then
the same burst again once every Lambda environment it started is warm.
MiniStack (installed into a side venv by bench/ministack.py) gets the same deploy_stack, the same
image and the same model server.

    .venv/bin/python bench/workflow.py [--model model.tar.gz] [--images 30] [--burst 50] [--no-ministack]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ministack import MINISTACK_VERSION, running_ministack

from scones.local.deploy.stack import StackConfig, deploy_stack
from scones.local.stacks.embedded import start_stack, stop_stack
from scones.local.workflow_client import ImageRef, run_images
from scones.model.config import FAKE_CREDENTIALS, load_settings

REPO = Path(__file__).resolve().parents[1]
WARMUP = 3


@dataclass(frozen=True)
class Figures:
    p50_ms: float
    p90_ms: float
    execution_p50_ms: float
    burst_per_s: float  # the first burst: most of its Lambda environments start cold
    warm_burst_per_s: float  # the same burst again, every environment warm
    failed: int  # executions of the two bursts whose outcome was "failed"


def stack_parser(doc: str | None) -> argparse.ArgumentParser:
    """The arguments every embedded-stack benchmark takes."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path,
                        help="model.tar.gz to serve (default: train one of training's default shape on generated images)")
    return parser


@contextmanager
def bench_home(prefix: str) -> Iterator[Path]:
    """A throw-away SCONES_HOME; the Lambda runtime venv is built once, in the repository's cache."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        os.environ["SCONES_HOME"] = tmp
        os.environ.setdefault("SCONES_LAMBDA_RUNTIME_CACHE", str(REPO / ".scones" / "lambda-runtime"))
        yield Path(tmp)


def train_default_shape_model(home: Path) -> Path:
    from scones.model import cifar, synth, train

    archive = synth.write_synth_archive(home / "data", ("bicycle", "motorcycle"), 100, 20)
    staged = cifar.stage_archive(archive, home / "data", ("bicycle", "motorcycle")).out_dir
    # Training's default shape (3 ConvNets, each image and its mirror: what `scones train` serves), so the
    # per-image figures include the default model's forward pass; 12 epochs, since speed does not depend on the weights.
    args = train.build_parser().parse_args(["--data", str(staged), "--out", str(home / "model"),
                                            "--epochs", "12", "--quiet"])
    return train.run(args).artifact


def machine_reference_ms(rounds: int = 5) -> float:
    """Median time of a fixed pure-Python workload (JSON round trips, as the stack's servers do): this
    VM's speed varies by 2× from hour to hour, so each run prints it next to its figures."""
    import json

    document = {"s3_bucket": "bucket", "s3_key": "incoming/x.png", "inferences": [0.1, 0.9], "n": list(range(50))}
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        for _ in range(20_000):
            json.loads(json.dumps(document))
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(session: boto3.Session, state_machine_arn: str, bucket: str, body: bytes, images: int, burst: int) -> Figures:
    """Sequential executions (after warm-up), then `burst` started at once, twice: the first burst starts
    the functions' other execution environments (cold starts, as on AWS), the second finds them warm."""
    s3, sfn = session.client("s3"), session.client("stepfunctions")
    s3.put_object(Bucket=bucket, Key="bench/image.png", Body=body)
    ref = ImageRef("bench/image.png", bucket, "bench/image.png")
    latencies, executions, failures = [], [], set()
    for i in range(WARMUP + images):
        began = time.perf_counter()
        [outcome] = run_images(sfn, state_machine_arn, [ref])
        elapsed_ms = (time.perf_counter() - began) * 1000
        if outcome.outcome == "failed":
            failures.add(outcome.reason)
        if i >= WARMUP:
            latencies.append(elapsed_ms)
            described = sfn.describe_execution(executionArn=outcome.execution_arn)
            executions.append((described["stopDate"] - described["startDate"]).total_seconds() * 1000)
    rates, failed = [], 0
    for _ in range(2):
        began = time.perf_counter()
        outcomes = run_images(sfn, state_machine_arn, [ref] * burst)
        rates.append(burst / (time.perf_counter() - began))
        failures |= {o.reason for o in outcomes if o.outcome == "failed"}
        failed += sum(o.outcome == "failed" for o in outcomes)
    if failures:
        print(f"failed outcomes on {session.client('sts').meta.endpoint_url}: {sorted(map(str, failures))[:3]}")
    return Figures(statistics.median(latencies), percentile(latencies, 0.9), statistics.median(executions),
                   rates[0], rates[1], failed)  # fmt: skip


def measure_ministack(home: Path, config: StackConfig, body: bytes, images: int, burst: int) -> Figures:
    """deploy_stack into MiniStack, pointed at the embedded stack's model server, and the same workload."""
    with running_ministack(home / "logs" / "ministack.log") as url:
        os.environ["AWS_ENDPOINT_URL"] = url  # deploy_stack's clients, as for LocalStack
        try:
            credentials = {name.lower(): value for name, value in FAKE_CREDENTIALS.items()}
            session = boto3.Session(region_name="us-east-1", **credentials)
            outputs = deploy_stack(session, config)
            return measure(session, outputs.state_machine_arn, outputs.bucket, body, images, burst)
        finally:
            del os.environ["AWS_ENDPOINT_URL"]


def print_table(seconds_to_ready: float, ours: Figures, theirs: Figures | None) -> None:
    rows = [
        ("warm per-image p50 (ms)", ours.p50_ms, theirs and theirs.p50_ms, "lower"),
        ("warm per-image p90 (ms)", ours.p90_ms, theirs and theirs.p90_ms, "lower"),
        ("execution p50 (ms)", ours.execution_p50_ms, theirs and theirs.execution_p50_ms, "lower"),
        ("burst (executions/s)", ours.burst_per_s, theirs and theirs.burst_per_s, "higher"),
        ("warm burst (executions/s)", ours.warm_burst_per_s, theirs and theirs.warm_burst_per_s, "higher"),
        ("bursts: failed outcomes", ours.failed, theirs and theirs.failed, ""),
    ]
    print(f"scones up → ready: {seconds_to_ready:.2f} s")
    print(f"{'':28}{'scones':>10}{'MiniStack ' + MINISTACK_VERSION:>18}{'ratio (better ×)':>18}")
    for name, mine, other, better in rows:
        ratio = ""
        if other is not None and mine and other and better:
            ratio = f"{(other / mine if better == 'lower' else mine / other):.1f}×"
        other_text = "—" if other is None else f"{other:.1f}"
        print(f"{name:28}{mine:>10.1f}{other_text:>18}{ratio:>18}")


def main() -> None:
    parser = stack_parser(__doc__)
    parser.add_argument("--images", type=int, default=30, help="sequential executions to time (default 30)")
    parser.add_argument("--burst", type=int, default=50, help="executions started at once (default 50)")
    parser.add_argument("--no-ministack", action="store_true", help="skip the MiniStack comparison")
    args = parser.parse_args()

    reference_before = machine_reference_ms()
    with bench_home("scones-bench-") as home:
        settings = load_settings()
        model = args.model or train_default_shape_model(home)
        body = _any_png() if args.model else next((home / "data" / "test").glob("bicycle*.png")).read_bytes()
        started = start_stack(settings, model)
        try:
            state = started.state
            ours = measure(state.boto3_session(), state.state_machine_arn, state.bucket, body, args.images, args.burst)
            print(f"scones: {ours}", flush=True)
            theirs = None
            if not args.no_ministack:
                config = StackConfig(
                    stack_name=settings.stack_name, bucket=settings.bucket, endpoint_name=settings.endpoint_name,
                    class_names=tuple(state.class_names), threshold=state.threshold,
                    # MiniStack has no SageMaker: its Lambdas reach our endpoint through the moto host,
                    # which routes InvokeEndpoint by endpoint name to the model server.
                    lambda_environment={"AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": state.aws_endpoint_url},
                )  # fmt: skip
                theirs = measure_ministack(home, config, body, args.images, args.burst)
        finally:
            stop_stack(settings)
    print_table(started.seconds_to_ready, ours, theirs)
    print(f"machine reference (fixed JSON workload, lower is faster): {reference_before:.0f} ms before, "
          f"{machine_reference_ms():.0f} ms after")


def _any_png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


if __name__ == "__main__":
    main()
