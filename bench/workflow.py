"""Embedded-stack figures: time from `scones up` to ready, and per-image workflow latency.

Sequential executions (after warm-up) give the warm per-image latency of the whole chain —
Step Functions → serialize → classify (model server) → filter — as a user of `scones classify`
sees it; a concurrent burst gives throughput.

    .venv/bin/python bench/workflow.py [--model model.tar.gz] [--images 30] [--burst 50]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from scones.model.config import load_settings
from scones.local.stacks.embedded import start_stack, stop_stack
from scones.local.workflow_client import ImageRef, run_images

REPO = Path(__file__).resolve().parents[1]
WARMUP = 3


def train_small_model(home: Path) -> Path:
    from scones.model import cifar, synth, train

    archive = synth.write_synth_archive(home / "data", ("bicycle", "motorcycle"), 100, 20)
    staged = cifar.stage_archive(archive, home / "data", ("bicycle", "motorcycle")).out_dir
    args = train.build_parser().parse_args(["--data", str(staged), "--out", str(home / "model"), "--epochs", "6", "--quiet"])
    return train.run(args).artifact


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="model.tar.gz to serve (default: train a small one first)")
    parser.add_argument("--images", type=int, default=30, help="sequential executions to time (default 30)")
    parser.add_argument("--burst", type=int, default=50, help="executions started at once (default 50)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="scones-bench-") as tmp:
        home = Path(tmp)
        os.environ["SCONES_HOME"] = str(home)
        os.environ.setdefault("SCONES_LAMBDA_RUNTIME_CACHE", str(REPO / ".scones" / "lambda-runtime"))  # build the runtime venv once
        settings = load_settings()
        model = args.model or train_small_model(home)
        started = start_stack(settings, model)
        try:
            state = started.state
            session = state.boto3_session()
            s3, sfn = session.client("s3"), session.client("stepfunctions")
            body = _any_png() if args.model else next((home / "data" / "test").glob("bicycle*.png")).read_bytes()
            s3.put_object(Bucket=state.bucket, Key="bench/image.png", Body=body)
            ref = ImageRef("bench/image.png", state.bucket, "bench/image.png")

            latencies = []
            for i in range(WARMUP + args.images):
                began = time.perf_counter()
                [outcome] = run_images(sfn, state.state_machine_arn, [ref], poll_s=0.005)
                if outcome.outcome == "failed":
                    raise SystemExit(f"execution failed: {outcome.reason}")
                if i >= WARMUP:
                    latencies.append((time.perf_counter() - began) * 1000)

            began = time.perf_counter()
            outcomes = run_images(sfn, state.state_machine_arn, [ref] * args.burst, poll_s=0.05)
            burst_s = time.perf_counter() - began
        finally:
            stop_stack(settings)

    print(f"scones up → ready:                 {started.seconds_to_ready:6.2f} s")
    print(f"warm per-image latency (n={args.images}):   p50 {statistics.median(latencies):6.0f} ms   "
          f"p90 {percentile(latencies, 0.9):6.0f} ms   min {min(latencies):6.0f} ms")
    failed = sum(o.outcome == "failed" for o in outcomes)
    print(f"burst of {args.burst} executions:         {burst_s:6.2f} s  "
          f"({args.burst / burst_s:.1f} images/s, {failed} failed)")


def _any_png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


if __name__ == "__main__":
    main()
