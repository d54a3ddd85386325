"""Executions lost when Lambda runtimes die: the real workflow on the embedded stack, every Lambda
runtime process killed (SIGKILL, as the OOM killer does) twice while a burst of executions runs.

Prints how each execution ended: classified, review, failed (with its reason and whether the
failure record landed in S3), and lost (still RUNNING at the deadline). The target is 0 lost.

    .venv/bin/python bench/lambda_faults.py [--model model.tar.gz] [--images 100] [--kills 2]
"""
from __future__ import annotations

import collections
import os
import signal
import threading
import time
from pathlib import Path

from workflow import bench_home, stack_parser, train_default_shape_model  # bench/workflow.py, beside this script

from scones.local.stacks.embedded import MOTO_PROCESS, start_stack, stop_stack
from scones.local.workflow_client import ImageRef, run_images
from scones.model.config import load_settings

REPO = Path(__file__).resolve().parents[1]
REAL_TEST_SET = REPO / ".." / "shared" / "data" / "cifar100-bicycle-motorcycle" / "test"


def runtime_pids(moto_pid: int) -> list[int]:
    """The Lambda runtime processes (awslambdaric) the moto host started."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if (entry.name.isdigit() and b"awslambdaric" in (entry / "cmdline").read_bytes()
                    and f"PPid:\t{moto_pid}\n" in (entry / "status").read_text()):  # fmt: skip
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def kill_runtimes(moto_pid: int, kills: int, every_s: float, killed: list[int]) -> None:
    for _ in range(kills):
        time.sleep(every_s)
        for pid in runtime_pids(moto_pid):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass


def main() -> None:
    parser = stack_parser(__doc__)
    parser.add_argument("--images", type=int, default=100, help="executions started at once (default 100)")
    parser.add_argument("--kills", type=int, default=2, help="times every runtime is killed (default 2)")
    parser.add_argument("--every", type=float, default=1.5, help="seconds between kills (default 1.5)")
    args = parser.parse_args()

    with bench_home("scones-bench-faults-") as home:
        settings = load_settings()
        model = args.model or train_default_shape_model(home)
        images_dir = REAL_TEST_SET if REAL_TEST_SET.is_dir() else home / "data" / "test"
        photos = sorted(images_dir.glob("*.png"))
        started = start_stack(settings, model)
        try:
            state = started.state
            s3, sfn = state.client("s3"), state.client("stepfunctions")
            refs = []
            for i in range(args.images):
                photo = photos[i % len(photos)]
                key = f"bench/{i:03d}-{photo.name}"
                s3.put_object(Bucket=state.bucket, Key=key, Body=photo.read_bytes())
                refs.append(ImageRef(photo.name, state.bucket, key))
            killed: list[int] = []
            killer = threading.Thread(target=kill_runtimes, args=(state.processes[MOTO_PROCESS], args.kills, args.every, killed))
            began = time.perf_counter()
            killer.start()
            outcomes = run_images(sfn, state.state_machine_arn, refs, timeout_s=300, poll_s=0.1)
            killer.join()
            elapsed = time.perf_counter() - began
            records = {obj["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=state.bucket)
                       for obj in page.get("Contents", [])}  # fmt: skip
        finally:
            stop_stack(settings)

    counts = collections.Counter(o.outcome for o in outcomes)
    lost = [o for o in outcomes if o.reason and o.reason.startswith("still running")]
    print(f"images from {images_dir.name if images_dir == REAL_TEST_SET else 'the generated set'}; "
          f"{len(killed)} runtime processes killed in {args.kills} rounds; {elapsed:.1f} s")
    print(f"executions: {len(outcomes)}  classified {counts['classified']}  review {counts['review']}  "
          f"failed {counts['failed'] - len(lost)}  lost {len(lost)}")
    reasons = collections.Counter((o.reason or "").split(":")[0] for o in outcomes if o.outcome == "failed")
    for reason, count in reasons.most_common():
        print(f"  failed with {reason}: {count}")
    print(f"records in S3: review/ {sum(k.startswith('review/') for k in records)}, failed/ {sum(k.startswith('failed/') for k in records)}")


if __name__ == "__main__":
    main()
