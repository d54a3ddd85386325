"""Warm Lambda invoke latency: today's runner against a baseline git revision's, in the same run.

Two moto hosts start side by side: one from this checkout, one from `--baseline` (default `main`)
extracted with `git archive` into a temporary directory. The same echo function is deployed to
both, warmed up, then invoked alternately (so machine noise hits both alike) through boto3, as
Step Functions and users call it. The median difference is the change in warm invoke overhead.

    .venv/bin/python bench/lambda_invoke.py [--baseline main] [--invocations 300]
"""
from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import boto3

from scones.local.stacks.embedded import (
    HOST, child_environment, free_port, http_answers, spawn, start_moto_host, stop_process_group, wait_ready,
)  # fmt: skip

REPO = Path(__file__).resolve().parents[1]
WARMUP = 30
HANDLER_SOURCE = "def handler(event, context):\n    return {'ok': True, 'echo': event}\n"
# Runs a baseline checkout's moto host: its `local/` and `model/` folders as scones.local and scones.model.
BASELINE_LAUNCHER = """
import importlib.util, runpy, sys, types
root = sys.argv.pop(1)
sys.modules["scones"] = package = types.ModuleType("scones")
package.__path__ = []
for name in ("local", "model"):
    spec = importlib.util.spec_from_file_location(f"scones.{name}", f"{root}/{name}/__init__.py",
                                                  submodule_search_locations=[f"{root}/{name}"])
    module = importlib.util.module_from_spec(spec)
    sys.modules[f"scones.{name}"] = module
    spec.loader.exec_module(module)
runpy.run_module(sys.argv.pop(1), run_name="__main__")
"""


def extract_baseline(ref: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "local", "model"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def start_baseline_host(root: Path, log: Path) -> tuple[int, str]:
    port = free_port()
    url = f"http://{HOST}:{port}"
    argv = [sys.executable, "-c", BASELINE_LAUNCHER, str(root), "scones.local.emulator.moto_host", "--host", HOST, "--port", str(port)]
    process = spawn(argv, log, child_environment(url, "us-east-1"))
    wait_ready("baseline moto server", process, log, lambda: http_answers(f"{url}/moto-api/"), 60)
    return process.pid, url


def deploy_echo(url: str) -> Callable[[], float]:
    """Create the echo function on the host at `url`; returns a timed invoke (milliseconds)."""
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    role = session.client("iam", endpoint_url=url).create_role(RoleName="bench", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("echo.py", HANDLER_SOURCE)
    client = session.client("lambda", endpoint_url=url)
    client.create_function(FunctionName="echo", Runtime="python3.11", Role=role, Handler="echo.handler", Code={"ZipFile": code.getvalue()})

    def timed() -> float:
        started = time.perf_counter()
        response = client.invoke(FunctionName="echo", Payload=b'{"s3_key": "test/bicycle_s_000513.png"}')
        response["Payload"].read()
        elapsed = (time.perf_counter() - started) * 1000
        if "FunctionError" in response:
            raise RuntimeError(f"echo failed on {url}")
        return elapsed

    return timed


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="main", help="git revision whose runner is the baseline (default main)")
    parser.add_argument("--invocations", type=int, default=300, help="timed warm invocations per runner (default 300)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="scones-bench-lambda-") as tmp:
        root = extract_baseline(args.baseline, Path(tmp))
        baseline_pid, baseline_url = start_baseline_host(root, Path(tmp) / "baseline.log")
        current, current_url = start_moto_host(Path(tmp) / "current.log", "us-east-1")
        try:
            runners = {f"baseline ({args.baseline})": deploy_echo(baseline_url), "this checkout": deploy_echo(current_url)}
            for timed in runners.values():
                for _ in range(WARMUP):
                    timed()
            samples: dict[str, list[float]] = {name: [] for name in runners}
            for _ in range(args.invocations):
                for name, timed in runners.items():
                    samples[name].append(timed())
        finally:
            stop_process_group(baseline_pid)
            stop_process_group(current.pid)

    print(f"warm Lambda invoke through moto (boto3 round trip), {args.invocations} alternating calls each, ms")
    print(f"{'runner':<28}{'median':>9}{'mean':>9}{'p10':>9}{'p90':>9}")
    for name, values in samples.items():
        row = (statistics.median(values), statistics.fmean(values), percentile(values, 0.1), percentile(values, 0.9))
        print(f"{name:<28}" + "".join(f"{value:>9.2f}" for value in row))
    baseline, current_values = samples.values()
    print(f"difference of medians (this checkout − baseline): {statistics.median(current_values) - statistics.median(baseline):+.2f} ms")


if __name__ == "__main__":
    main()
