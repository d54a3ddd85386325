"""Model server throughput and latency over HTTP against the same model called in-process.

    .venv/bin/python bench/serve.py [--model model.tar.gz] [--requests 600]

"Raw" is ModelRunner.run_batch on c requests at once: input_fn per image, one batched
predict_fn, output_fn per row, the server's exact work minus HTTP and batching. "HTTP" is c
client threads with keep-alive connections against `python -m scones.model.server` on the
same machine. Targets: >= 90 % of raw throughput at concurrency 32, <= 2 ms added p50 at 1.
Without --model it builds an untrained artifact of the training script's default shape
(speed does not depend on the weights).
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.table import Table

from scones.model.artifact import load_inference_module, pack_artifact, write_code_dir
from scones.model.server.model_runner import InvocationRequest, ModelRunner

ENDPOINT = "bench-endpoint"
console = Console()


def untrained_artifact(out: Path, width: int, class_names: list[str]) -> Path:
    model_dir = out / "model"
    write_code_dir(model_dir)
    handlers = load_inference_module(model_dir)
    torch.manual_seed(0)
    net = handlers.ResNet18Cifar(num_classes=len(class_names), width=width).eval()
    torch.save(net.state_dict(), model_dir / "model.pth")
    (model_dir / "model.json").write_text(json.dumps({
        "architecture": "resnet18_cifar", "width": width, "class_names": class_names,
        "mean": [0.5071, 0.4865, 0.4409], "std": [0.2673, 0.2564, 0.2762], "image_size": 32,
        "metrics": {"note": "untrained, for benchmarking only"},
    }))
    (model_dir / "baseline.json").write_text(json.dumps({
        "class_names": class_names, "max_confidence": [], "predicted_class_counts": {},
        "threshold": 0.93, "created": datetime.now(timezone.utc).isoformat(),
    }))
    return pack_artifact(model_dir, out / "model.tar.gz")


def sample_pngs(count: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    images = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), "RGB").save(buffer, "PNG")
        images.append(buffer.getvalue())
    return images


def percentile_ms(latencies: list[float], q: float) -> float:
    return float(np.percentile(latencies, q)) * 1000


def bench_raw(runner: ModelRunner, images: list[bytes], concurrency: int, requests: int) -> tuple[float, float, float]:
    """Throughput (img/s), p50 and p99 (ms) of run_batch at batch size = concurrency."""
    batch = [InvocationRequest(images[i % len(images)], "image/png", "application/json") for i in range(concurrency)]
    runner.run_batch(batch)  # warm-up
    latencies = []
    started = time.perf_counter()
    for _ in range(max(1, requests // concurrency)):
        began = time.perf_counter()
        runner.run_batch(batch)
        latencies.append(time.perf_counter() - began)
    elapsed = time.perf_counter() - started
    return len(latencies) * concurrency / elapsed, percentile_ms(latencies, 50), percentile_ms(latencies, 99)


def bench_http(port: int, images: list[bytes], concurrency: int, requests: int) -> tuple[float, float, float]:
    """c client threads, one keep-alive connection each, sharing `requests` requests."""
    latencies: list[float] = []
    lock = threading.Lock()
    per_client = max(1, requests // concurrency)
    barrier = threading.Barrier(concurrency + 1)

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port)
        mine = []
        headers = {"Content-Type": "image/png", "Accept": "application/json"}
        for warm in range(2):
            connection.request("POST", f"/endpoints/{ENDPOINT}/invocations", images[warm], headers)
            connection.getresponse().read()
        barrier.wait()
        for number in range(per_client):
            body = images[(index * per_client + number) % len(images)]
            began = time.perf_counter()
            connection.request("POST", f"/endpoints/{ENDPOINT}/invocations", body, headers)
            response = connection.getresponse()
            response.read()
            mine.append(time.perf_counter() - began)
            if response.status != 200:
                raise RuntimeError(f"server answered {response.status}")
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(index,)) for index in range(concurrency)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, percentile_ms(latencies, 50), percentile_ms(latencies, 99)


def start_server(model: Path, max_batch_size: int, max_batch_delay_ms: float) -> tuple[subprocess.Popen[bytes], int]:
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "scones.model.server", "--model", str(model), "--port", str(port),
         "--endpoint-name", ENDPOINT, "--max-batch-size", str(max_batch_size),
         "--max-batch-delay-ms", str(max_batch_delay_ms), "--log-level", "warning"],
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/ping")
            if connection.getresponse().status == 200:
                return process, port
        except OSError:
            pass
        if process.poll() is not None:
            raise SystemExit(f"model server exited with {process.returncode}")
        time.sleep(0.2)
    process.terminate()
    raise SystemExit("model server did not become ready in 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="model.tar.gz (default: build an untrained one)")
    parser.add_argument("--width", type=int, default=16, help="width of the untrained model (training's default)")
    parser.add_argument("--requests", type=int, default=640, help="requests per concurrency level")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated client counts")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-batch-delay-ms", type=float, default=5.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="scones-bench-") as scratch:
        model = args.model or untrained_artifact(Path(scratch), args.width, ["bicycle", "motorcycle"])
        images = sample_pngs(64)
        runner = ModelRunner(model, device="auto")
        runner.load()
        levels = [int(level) for level in args.concurrency.split(",")]
        raw = {level: bench_raw(runner, images, level, args.requests) for level in levels}
        runner.close()
        process, port = start_server(model, args.max_batch_size, args.max_batch_delay_ms)
        try:
            served = {level: bench_http(port, images, level, args.requests) for level in levels}
        finally:
            process.terminate()
            process.wait(timeout=30)

    table = Table(title=f"model server vs in-process run_batch ({torch.get_num_threads()} torch threads, "
                        f"device {runner.model.device})")
    for column in ("concurrency", "raw img/s", "raw p50 ms", "http img/s", "http p50 ms", "http p99 ms",
                   "throughput ratio", "added p50 ms"):
        table.add_column(column, justify="right")
    for level in levels:
        raw_rate, raw_p50, _ = raw[level]
        rate, p50, p99 = served[level]
        table.add_row(str(level), f"{raw_rate:.0f}", f"{raw_p50:.2f}", f"{rate:.0f}", f"{p50:.2f}", f"{p99:.2f}",
                      f"{rate / raw_rate:.0%}", f"{p50 - raw_p50:+.2f}")
    console.print(table)


if __name__ == "__main__":
    main()
