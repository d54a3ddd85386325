"""Warm Lambda invoke latency: today's runner against a baseline git revision's, in the same run.

Two ways, each with this checkout and `--baseline` (default `main`, extracted with `git archive`
into a temporary directory):
- through moto: two moto hosts side by side, the same echo function deployed to both, invoked
  alternately through boto3 (as users and Step Functions call it), so machine noise hits both alike;
- in-process: `ProcessLambdaRunner.invoke` called directly in a child process per side, in
  alternating blocks: the runner's own overhead without moto and HTTP.
The median difference is the change in warm invoke overhead.

    .venv/bin/python bench/lambda_invoke.py [--baseline main] [--invocations 300]
"""
from __future__ import annotations

import argparse
import io
import json
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
# Times ProcessLambdaRunner.invoke in-process; prints the latencies (ms) as JSON.
IN_PROCESS_TIMER = """
import io, json, sys, tempfile, time, zipfile
from pathlib import Path
from scones.local.emulator.lambda_runner import ProcessLambdaRunner
from scones.local.emulator.lambda_spec import FunctionSpec
count, source = int(sys.argv[1]), sys.argv[2]
code = io.BytesIO()
with zipfile.ZipFile(code, "w") as archive:
    archive.writestr("echo.py", source)
spec = FunctionSpec(name="echo", arn="arn:aws:lambda:us-east-1:123456789012:function:echo", handler="echo.handler",
                    runtime="python3.11", version="$LATEST", timeout_s=10, memory_mb=128, region="us-east-1", code_sha256="bench")
event = {"s3_key": "test/bicycle_s_000513.png"}
with tempfile.TemporaryDirectory() as tmp:
    runner = ProcessLambdaRunner("http://127.0.0.1:9", Path(tmp))
    for _ in range(30):
        runner.invoke(spec, code.getvalue, event)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        result = runner.invoke(spec, code.getvalue, event)
        times.append((time.perf_counter() - started) * 1000)
        assert not result.errored, result.payload
    runner.close()
print(json.dumps(times))
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


def time_in_process(root: Path | None, count: int) -> list[float]:
    """Latencies of `count` warm in-process invokes with the baseline tree at `root`, or this checkout."""
    if root is None:
        argv = [sys.executable, "-c", IN_PROCESS_TIMER, str(count), HANDLER_SOURCE]
    else:
        module = root / "bench_in_process.py"
        module.write_text(IN_PROCESS_TIMER)
        argv = [sys.executable, "-c", BASELINE_LAUNCHER.replace("runpy.run_module(sys.argv.pop(1)", "runpy.run_path(sys.argv.pop(1)"),
                str(root), str(module), str(count), HANDLER_SOURCE]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=600)
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_table(title: str, samples: dict[str, list[float]]) -> None:
    print(title)
    print(f"{'runner':<28}{'median':>9}{'mean':>9}{'p10':>9}{'p90':>9}")
    for name, values in samples.items():
        row = (statistics.median(values), statistics.fmean(values), percentile(values, 0.1), percentile(values, 0.9))
        print(f"{name:<28}" + "".join(f"{value:>9.3f}" for value in row))
    baseline, current = samples.values()
    print(f"difference of medians (this checkout − baseline): {statistics.median(current) - statistics.median(baseline):+.3f} ms\n")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="main", help="git revision whose runner is the baseline (default main)")
    parser.add_argument("--invocations", type=int, default=300, help="timed warm invocations per runner (default 300)")
    parser.add_argument("--blocks", type=int, default=4, help="alternating in-process blocks per runner (default 4)")
    args = parser.parse_args()
    names = (f"baseline ({args.baseline})", "this checkout")

    with tempfile.TemporaryDirectory(prefix="scones-bench-lambda-") as tmp:
        root = extract_baseline(args.baseline, Path(tmp))
        baseline_pid, baseline_url = start_baseline_host(root, Path(tmp) / "baseline.log")
        current, current_url = start_moto_host(Path(tmp) / "current.log", "us-east-1")
        try:
            runners = {names[0]: deploy_echo(baseline_url), names[1]: deploy_echo(current_url)}
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
        in_process: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(args.blocks):
            in_process[names[0]] += time_in_process(root, args.invocations)
            in_process[names[1]] += time_in_process(None, args.invocations)

    print_table(f"warm Lambda invoke through moto (boto3 round trip), {args.invocations} alternating calls each, ms", samples)
    print_table(f"warm ProcessLambdaRunner.invoke in-process, {args.blocks} alternating blocks of {args.invocations}, ms", in_process)


if __name__ == "__main__":
    main()
