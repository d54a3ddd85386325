"""Model server throughput and latency over HTTP against the same model called in-process.

    .venv/bin/python bench/serve.py [--model model.tar.gz] [--requests 600]

Three ways through the same model, at batch size = concurrency c, on the same cores:
  forward   predict_fn on an already decoded (c, 3, 32, 32) batch: the raw batched forward pass
            the targets are measured against;
  handlers  ModelRunner.run_batch: input_fn (PNG decode, resize, normalise) per image, one
            predict_fn, output_fn (JSON) per row: the server's model work without HTTP;
  http      c client threads, one keep-alive http.client connection each, against
            `python -m scones.model.server` in its own process; includes HTTP, decode, batching.
The three alternate in rounds so that load from anything else on the machine falls on each
alike. Targets: http >= 90 % of forward throughput at c=32, <= 2 ms added p50 at c=1.
Without --model it builds an untrained artifact of the training script's default shape
(speed does not depend on the weights).
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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


@dataclass
class Timings:
    """Per-request latencies and the busy time they took, pooled over rounds."""

    latencies: list[float] = field(default_factory=list)
    images: int = 0
    elapsed: float = 0.0

    def add(self, latencies: list[float], images: int, elapsed: float) -> None:
        self.latencies += latencies
        self.images += images
        self.elapsed += elapsed

    def rate(self) -> float:
        return self.images / self.elapsed


def time_batches(call: Callable[[], object], concurrency: int, requests: int) -> tuple[list[float], int, float]:
    """Latency of each call (every image in a batch waits for all of it), images done, seconds."""
    latencies = []
    started = time.perf_counter()
    for _ in range(max(1, requests // concurrency)):
        began = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - began)
    return latencies, len(latencies) * concurrency, time.perf_counter() - started


def time_http(port: int, images: list[bytes], concurrency: int, requests: int) -> tuple[list[float], int, float]:
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
    return latencies, len(latencies), time.perf_counter() - started


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
    parser.add_argument("--requests", type=int, default=640, help="requests per concurrency level and way")
    parser.add_argument("--rounds", type=int, default=4, help="rounds the requests are split into, alternating ways")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated client counts")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-batch-delay-ms", type=float, default=5.0)
    args = parser.parse_args()

    levels = [int(level) for level in args.concurrency.split(",")]
    ways = ("forward", "handlers", "http")
    timings = {(level, way): Timings() for level in levels for way in ways}
    with tempfile.TemporaryDirectory(prefix="scones-bench-") as scratch:
        model = args.model or untrained_artifact(Path(scratch), args.width, ["bicycle", "motorcycle"])
        images = sample_pngs(64)
        runner = ModelRunner(model, device="auto")
        runner.load()
        process, port = start_server(model, args.max_batch_size, args.max_batch_delay_ms)
        try:
            for level in levels:
                batch = [InvocationRequest(images[i % len(images)], "image/png", "application/json")
                         for i in range(level)]
                tensor = torch.cat([runner.handlers.input_fn(request.body, request.content_type) for request in batch])
                calls = {
                    "forward": lambda: time_batches(lambda: runner.handlers.predict_fn(tensor, runner.model),
                                                    level, args.requests // args.rounds),
                    "handlers": lambda: time_batches(lambda: runner.run_batch(batch), level, args.requests // args.rounds),
                    "http": lambda: time_http(port, images, level, args.requests // args.rounds),
                }
                for way in ways:  # warm-up
                    calls[way]()
                for _ in range(args.rounds):
                    for way in ways:
                        timings[level, way].add(*calls[way]())
        finally:
            process.terminate()
            process.wait(timeout=30)
            runner.close()

    table = Table(title=f"model server vs in-process forward pass ({torch.get_num_threads()} torch threads, "
                        f"device {runner.model.device}, {args.rounds} alternating rounds)")
    for column in ("c", "forward img/s", "forward p50 ms", "handlers img/s", "http img/s", "http p50 ms",
                   "http p99 ms", "http / forward", "added p50 ms"):
        table.add_column(column, justify="right")
    for level in levels:
        forward, handlers, http = (timings[level, way] for way in ways)
        forward_p50, http_p50 = percentile_ms(forward.latencies, 50), percentile_ms(http.latencies, 50)
        table.add_row(
            str(level), f"{forward.rate():.0f}", f"{forward_p50:.2f}", f"{handlers.rate():.0f}",
            f"{http.rate():.0f}", f"{http_p50:.2f}", f"{percentile_ms(http.latencies, 99):.2f}",
            f"{http.rate() / forward.rate():.0%}", f"{http_p50 - forward_p50:+.2f}",
        )
    console = Console(width=140)
    console.print(table)


if __name__ == "__main__":
    main()
