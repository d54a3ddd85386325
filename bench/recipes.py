"""Training recipes side by side on the seeds' real CIFAR-100 photos: accuracy, calibration, routing, time.

Every recipe goes through the real trainer (`scones train`): the epoch is chosen and the
temperature fitted on the validation split carved from train; the test figures are only
reported. Wall time depends on the machine's load, so CPU time is printed beside it.

    python bench/recipes.py                      # the default recipe and the ablations below
    python bench/recipes.py --only default       # one of them
    python bench/recipes.py --extra "--epochs 30"  # the default recipe plus these flags
"""
from __future__ import annotations

import argparse
import contextlib
import io
import resource
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar100-bicycle-motorcycle"
# The default recipe (model/train.py DEFAULT_*) and variants that each change one ingredient.
RECIPES = {
    "default": [],
    "one network": ["--ensemble", "1"],
    "one network, no label smoothing": ["--ensemble", "1", "--label-smoothing", "0"],
    "one network, no flip average": ["--ensemble", "1", "--no-flip-average"],
    "no cutout": ["--cutout", "0"],
    "previous default: ResNet-18 width 16, 12 epochs": ["--architecture", "resnet18_cifar", "--width", "16", "--epochs", "12",
                                                         "--label-smoothing", "0", "--ensemble", "1"],
}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_recipe(flags: list[str], data: Path) -> dict:
    from scones.model.train import build_parser, run

    with tempfile.TemporaryDirectory(prefix="scones-recipe-") as out:
        args = build_parser().parse_args(["--data", str(data), "--out", out, "--quiet", *flags])
        wall, cpu = time.perf_counter(), cpu_seconds()
        with contextlib.redirect_stdout(io.StringIO()):
            result = run(args)
        return {"val": result.validation.accuracy, "test": result.test.accuracy, "T": result.temperature,
                "ece": (result.test.ece_before, result.test.ece_after), "routing": result.test.routing,
                "epoch": ", ".join(str(m.epoch) for m in result.chosen), "wall": time.perf_counter() - wall, "cpu": cpu_seconds() - cpu}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--only", choices=sorted(RECIPES), action="append", help="run only these recipes")
    parser.add_argument("--extra", default=None, help="run the default recipe plus these trainer flags")
    args = parser.parse_args()
    if not (args.data / "train").is_dir():
        print(f"no data at {args.data}: the seeds' photos live in ../shared beside the clone", file=sys.stderr)
        return 2
    recipes = {f"default {args.extra}": args.extra.split()} if args.extra else {k: RECIPES[k] for k in args.only or RECIPES}
    print("| recipe | chosen epochs | val acc | test acc | T | test ECE before → after | auto-routed at 0.93 | right among them | wall s | CPU s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, flags in recipes.items():
        r = run_recipe(flags, args.data)
        routed, right = r["routing"]["auto_routed_share"], r["routing"]["auto_routed_accuracy"]
        print(f"| {name} | {r['epoch']} | {r['val']:.3f} | {r['test']:.3f} | {r['T']:.2f} | {r['ece'][0]:.3f} → {r['ece'][1]:.3f} "
              f"| {routed:.1%} | {'n/a' if right is None else f'{right:.1%}'} | {r['wall']:.0f} | {r['cpu']:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
