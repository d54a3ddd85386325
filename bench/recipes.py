"""Training recipes side by side on the seeds' real CIFAR-100 photos: accuracy, calibration, routing, time.

Every recipe goes through the real trainer (`scones train`): the epoch is chosen and the
temperature fitted on the validation split carved from train; the test figures are only
reported. Choose between recipes on the validation columns: the split seed moves the
routing figure by ±7 points, so compare means over several seeds. Wall time depends on the
machine's load, so CPU time is printed beside it.

    python bench/recipes.py                           # the default recipe and the ablations below, seed 0
    python bench/recipes.py --only default --seeds 0-9 --jobs 8   # ten seeds, 8 trainings at once (GPU)
    python bench/recipes.py --extra "--epochs 30"     # the default recipe plus these flags
"""
from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar100-bicycle-motorcycle"
# The default recipe (model/train.py DEFAULT_*) and variants that each change one ingredient.
RECIPES = {
    "default": [],
    "learning rate 0.05, 30 epochs (the previous default)": ["--lr", "0.05", "--epochs", "30"],
    "30 epochs": ["--epochs", "30"],
    "50 epochs": ["--epochs", "50"],
    "learning rate 0.1": ["--lr", "0.1"],
    "no cutout": ["--cutout", "0"],
    "one network": ["--ensemble", "1"],
    "one network, no label smoothing": ["--ensemble", "1", "--label-smoothing", "0"],
    "one network, no flip average": ["--ensemble", "1", "--no-flip-average"],
    "previous default: ResNet-18 width 16, 12 epochs": ["--architecture", "resnet18_cifar", "--width", "16",
                                                         "--epochs", "12", "--label-smoothing", "0", "--ensemble", "1",
                                                         "--lr", "0.05"],
}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_recipe(flags: list[str], data: Path, seed: int, threads: int | None = None) -> dict:
    """One training through the real trainer; its figures, each from the split it names."""
    from scones.model.train import build_parser, run

    thread_flags = ["--threads", str(threads)] if threads else []
    with tempfile.TemporaryDirectory(prefix="scones-recipe-") as out:
        args = build_parser().parse_args(["--data", str(data), "--out", out, "--quiet", "--seed", str(seed),
                                          *thread_flags, *flags])
        wall, cpu = time.perf_counter(), cpu_seconds()
        with contextlib.redirect_stdout(io.StringIO()):
            result = run(args)
        return {"val": result.validation.accuracy, "test": result.test.accuracy, "T": result.temperature,
                "ece": (result.test.ece_before, result.test.ece_after),
                "val_routing": result.validation.routing, "routing": result.test.routing,
                "epoch": ", ".join(str(m.epoch) for m in result.chosen),
                "wall": time.perf_counter() - wall, "cpu": cpu_seconds() - cpu}


def seed_list(text: str) -> list[int]:
    """"0-9" or "0,3,5" -> seeds."""
    if "-" in text:
        first, last = text.split("-")
        return list(range(int(first), int(last) + 1))
    return [int(seed) for seed in text.split(",")]


def _routed(routing: dict) -> tuple[float, float | None]:
    return routing["auto_routed_share"], routing["auto_routed_accuracy"]


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def one_seed_row(name: str, r: dict) -> str:
    routed, right = _routed(r["routing"])
    return (f"| {name} | {r['epoch']} | {r['val']:.3f} | {r['test']:.3f} | {r['T']:.2f} "
            f"| {r['ece'][0]:.3f} → {r['ece'][1]:.3f} "
            f"| {routed:.1%} | {_percent(right)} | {r['wall']:.0f} | {r['cpu']:.0f} |")


def seeds_row(name: str, runs: list[dict]) -> str:
    """Means over seeds (ranges in brackets); 'meets' counts seeds at >= 75 % routed with >= 98 % right on test."""
    def mean_range(values: list[float]) -> str:
        return f"{statistics.mean(values):.1%} ({min(values):.1%}–{max(values):.1%})"

    def mean_right(values: list[float | None]) -> str:  # None: no photo routed in that run
        known = [value for value in values if value is not None]
        return _percent(statistics.mean(known) if known else None)

    val_routed = [_routed(r["val_routing"])[0] for r in runs]
    test_routed = [_routed(r["routing"])[0] for r in runs]
    val_right = [_routed(r["val_routing"])[1] for r in runs]
    test_right = [_routed(r["routing"])[1] for r in runs]
    meets = sum(routed >= 0.75 and (right or 0.0) >= 0.98 for routed, right in zip(test_routed, test_right))
    val_acc, test_acc = statistics.mean(r["val"] for r in runs), statistics.mean(r["test"] for r in runs)
    return (f"| {name} | {val_acc:.3f} | {mean_range(val_routed)} | {mean_right(val_right)} "
            f"| {test_acc:.3f} | {mean_range(test_routed)} | {mean_right(test_right)} "
            f"| {meets}/{len(runs)} | {statistics.mean(r['wall'] for r in runs):.0f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--only", choices=sorted(RECIPES), action="append", help="run only these recipes")
    parser.add_argument("--extra", default=None, help="run the default recipe plus these trainer flags")
    parser.add_argument("--seeds", type=seed_list, default=[0], help='split and weight seeds, "0-9" or "0,3" (default: 0)')
    parser.add_argument("--jobs", type=int, default=1, help="trainings at once, each in its own process (default: 1)")
    args = parser.parse_args()
    if not (args.data / "train").is_dir():
        print(f"no data at {args.data}: the seeds' photos live in ../shared beside the clone", file=sys.stderr)
        return 2
    recipes = {f"default {args.extra}": args.extra.split()} if args.extra else {k: RECIPES[k] for k in args.only or RECIPES}
    threads = max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else None
    if len(args.seeds) == 1:
        print("| recipe | chosen epochs | val acc | test acc | T | test ECE before → after | auto-routed at 0.93 "
              "| right among them | wall s | CPU s |")
        print("|---|---|---|---|---|---|---|---|---|---|")
    else:
        print(f"| recipe (seeds {args.seeds[0]}–{args.seeds[-1]}) | val acc | val routed at fitted T | right among them "
              "| test acc | test routed | right among them | seeds ≥ 75 % at ≥ 98 % | wall s |")
        print("|---|---|---|---|---|---|---|---|---|")
    # spawn: a CUDA context does not survive fork.
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for name, flags in recipes.items():
            runs = list(pool.map(run_recipe, *zip(*[(flags, args.data, seed, threads) for seed in args.seeds])))
            print(one_seed_row(name, runs[0]) if len(runs) == 1 else seeds_row(name, runs), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
