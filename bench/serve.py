"""Model server throughput and latency over HTTP against the same model called in-process.

    .venv/bin/python bench/serve.py [--model model.tar.gz] [--requests 600]

Four ways through the same model, at batch size = concurrency c, on the same cores:
  forward   predict_fn on an already decoded (c, 3, 32, 32) batch, torch's default intra-op threads:
            the raw batched forward pass the targets are measured against;
  1 thread  the same with one intra-op thread (what each `--workers N --torch-threads 1` process gets);
  handlers  ModelRunner.run_batch: input_fn (PNG decode, resize, normalise) per image, one
            predict_fn, output_fn (JSON) per row: the server's model work without HTTP;
  http      c keep-alive connections against `python -m scones.model.server` in its own process
            (with --server-args); includes HTTP, decode, batching. The default `lean` client sends
            pre-encoded requests from one uvloop event loop (~0.05 ms CPU a request); `threads` is
            c http.client threads (~0.3 ms a request), which on 2 cores takes CPU from the server.
The ways alternate in rounds so that load from anything else on the machine falls on each alike.
"per round": the median (min-max) of the ratio in each round, forward and http measured back to back.
CPU ms/img columns: the forward pass's, and during http the server's (all its processes) and the
client's, which show where the cores went even when other work on the machine skews the rates.
Targets: http >= 90 % of forward throughput at c=32, <= 2 ms added p50 at c=1.
Without --model it builds an untrained artifact of the training script's default shape
(speed does not depend on the weights).
"""
from __future__ import annotations

import argparse
import asyncio
import http.client
import io
import json
import os
import shlex
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
import uvloop
from PIL import Image
from rich.console import Console
from rich.table import Table

from scones.model.artifact import load_inference_module, pack_artifact, write_code_dir
from scones.model.train import DEFAULT_MEMBERS, DEFAULT_WIDTH
from scones.model.server.model_runner import InvocationRequest, ModelRunner

ENDPOINT = "bench-endpoint"


def untrained_artifact(out: Path, width: int, members: int, class_names: list[str]) -> Path:
    model_dir = out / "model"
    write_code_dir(model_dir)
    handlers = load_inference_module(model_dir)
    torch.manual_seed(0)
    net = handlers.build_network(handlers.ARCHITECTURE, len(class_names), width, members).eval()
    torch.save(net.state_dict(), model_dir / "model.pth")
    (model_dir / "model.json").write_text(json.dumps({
        "architecture": handlers.ARCHITECTURE, "width": width, "members": members, "flip_average": True,
        "class_names": class_names,
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
    """Per-request latencies, the busy time they took and the CPU time spent, pooled over rounds."""

    latencies: list[float] = field(default_factory=list)
    images: int = 0
    elapsed: float = 0.0
    cpu: float = 0.0  # this process: the forward pass or the handlers, or the HTTP client
    server_cpu: float = 0.0
    round_rates: list[float] = field(default_factory=list)  # images a second in each round

    def add(self, latencies: list[float], images: int, elapsed: float, cpu: float, server_cpu: float) -> None:
        self.latencies += latencies
        self.images += images
        self.elapsed += elapsed
        self.cpu += cpu
        self.server_cpu += server_cpu
        self.round_rates.append(images / elapsed)

    def rate(self) -> float:
        return self.images / self.elapsed

    def cpu_ms(self, seconds: float) -> float:
        return seconds / self.images * 1000

    def round_ratios(self, baseline: Timings) -> str:
        """Median (min-max) of this way's rate over the baseline's, round by round (each pair measured back to back)."""
        ratios = [mine / theirs for mine, theirs in zip(self.round_rates, baseline.round_rates)]
        return f"{np.median(ratios):.0%} ({min(ratios):.0%}-{max(ratios):.0%})"


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its children (a server's --workers), all threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") + sum(process_cpu_s(int(child)) for child in children)


def measured(call: Callable[[], tuple[list[float], int, float]], server_pid: int) -> tuple[list[float], int, float, float, float]:
    """The call's timings plus the CPU seconds this process and the server spent during it."""
    cpu, server = time.process_time(), process_cpu_s(server_pid)
    latencies, images, elapsed = call()
    return latencies, images, elapsed, time.process_time() - cpu, process_cpu_s(server_pid) - server


def time_batches(call: Callable[[], object], concurrency: int, requests: int) -> tuple[list[float], int, float]:
    """Latency of each call (every image in a batch waits for all of it), images done, seconds."""
    latencies = []
    started = time.perf_counter()
    for _ in range(max(1, requests // concurrency)):
        began = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - began)
    return latencies, len(latencies) * concurrency, time.perf_counter() - started


def single_threaded(call: Callable[[], tuple[list[float], int, float]]) -> tuple[list[float], int, float]:
    """The call with one intra-op thread: what each of `--workers N --torch-threads 1` gets for its forward pass."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return call()
    finally:
        torch.set_num_threads(threads)


def time_threaded_http(port: int, images: list[bytes], concurrency: int, requests: int) -> tuple[list[float], int, float]:
    """c http.client threads, one keep-alive connection each: a heavy client (the GIL, ~0.3 ms CPU a request)."""
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


def raw_request(body: bytes) -> bytes:
    """One pre-encoded POST, so the lean client spends no CPU building requests."""
    head = (f"POST /endpoints/{ENDPOINT}/invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
            f"Accept: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def lean_client(port: int, requests: list[bytes], warm: int, latencies: list[float],
                      barrier: asyncio.Barrier) -> None:  # fmt: skip
    """One keep-alive connection sending pre-encoded requests, reading the status line and Content-Length only."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for number, request in enumerate(requests):
        if number == warm:
            await barrier.wait()
        began = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"server answered {head[:12]!r}")
        length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
        await reader.readexactly(length)
        if number >= warm:
            latencies.append(time.perf_counter() - began)
    writer.close()


def time_lean_http(port: int, images: list[bytes], concurrency: int, requests: int) -> tuple[list[float], int, float]:
    """c connections on one uvloop event loop in this process: a client that leaves the cores to the server."""
    per_client, warm = max(1, requests // concurrency), 2
    encoded = [raw_request(image) for image in images]
    latencies: list[float] = []

    async def run() -> float:
        barrier = asyncio.Barrier(concurrency + 1)  # every connection open and warm before the clock starts
        clients = [asyncio.create_task(lean_client(
            port, [encoded[(index * per_client + number) % len(encoded)] for number in range(per_client + warm)],
            warm, latencies, barrier)) for index in range(concurrency)]
        await barrier.wait()
        began = time.perf_counter()
        await asyncio.gather(*clients)
        return time.perf_counter() - began

    elapsed = uvloop.run(run())
    return latencies, len(latencies), elapsed


def start_server(model: Path, server_args: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "scones.model.server", "--model", str(model), "--port", str(port),
         "--endpoint-name", ENDPOINT, "--log-level", "warning", *server_args],
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
    parser.add_argument("--width", type=int, default=DEFAULT_WIDTH, help="width of the untrained model (training's default)")
    parser.add_argument("--ensemble", type=int, default=DEFAULT_MEMBERS, help="networks in the untrained model (training's default)")
    parser.add_argument("--requests", type=int, default=640, help="requests per concurrency level and way")
    parser.add_argument("--rounds", type=int, default=4, help="rounds the requests are split into, alternating ways")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated client counts")
    parser.add_argument("--client", choices=("lean", "threads"), default="lean",
                        help="lean: pre-encoded requests on one uvloop event loop; threads: c http.client threads")
    parser.add_argument("--server-args", default="", help='extra server options, e.g. "--decode-threads 0"')
    args = parser.parse_args()

    levels = [int(level) for level in args.concurrency.split(",")]
    ways = ("forward", "forward 1 thread", "handlers", "http")
    timings = {(level, way): Timings() for level in levels for way in ways}
    with tempfile.TemporaryDirectory(prefix="scones-bench-") as scratch:
        model = args.model or untrained_artifact(Path(scratch), args.width, args.ensemble, ["bicycle", "motorcycle"])
        images = sample_pngs(64)
        runner = ModelRunner(model, device="auto")
        runner.load()
        process, port = start_server(model, shlex.split(args.server_args))
        time_http = time_lean_http if args.client == "lean" else time_threaded_http
        try:
            for level in levels:
                batch = [InvocationRequest(images[i % len(images)], "image/png", "application/json")
                         for i in range(level)]
                tensor = torch.cat([runner.handlers.input_fn(request.body, request.content_type) for request in batch])
                calls = {
                    "forward": lambda: time_batches(lambda: runner.handlers.predict_fn(tensor, runner.model),
                                                    level, args.requests // args.rounds),
                    "forward 1 thread": lambda: single_threaded(lambda: time_batches(
                        lambda: runner.handlers.predict_fn(tensor, runner.model), level, args.requests // args.rounds)),
                    "handlers": lambda: time_batches(lambda: runner.run_batch(batch), level, args.requests // args.rounds),
                    "http": lambda: time_http(port, images, level, args.requests // args.rounds),
                }
                for way in ways:  # warm-up
                    calls[way]()
                for _ in range(args.rounds):
                    for way in ways:
                        timings[level, way].add(*measured(calls[way], process.pid))
        finally:
            process.terminate()
            process.wait(timeout=30)
            runner.close()

    table = Table(title=f"model server vs in-process forward pass ({torch.get_num_threads()} torch threads, "
                        f"device {runner.model.device}, {args.rounds} alternating rounds, {args.client} client, "
                        f"load average {os.getloadavg()[0]:.1f})")
    for column in ("c", "forward img/s", "forward p50 ms", "1 thread img/s", "handlers img/s", "http img/s", "http p50 ms",
                   "http p99 ms", "http / forward", "per round", "added p50 ms", "CPU ms/img forward", "server", "client"):
        table.add_column(column, justify="right")
    for level in levels:
        forward, forward_1, handlers, http = (timings[level, way] for way in ways)
        forward_p50, http_p50 = percentile_ms(forward.latencies, 50), percentile_ms(http.latencies, 50)
        table.add_row(
            str(level), f"{forward.rate():.0f}", f"{forward_p50:.2f}", f"{forward_1.rate():.0f}", f"{handlers.rate():.0f}",
            f"{http.rate():.0f}", f"{http_p50:.2f}", f"{percentile_ms(http.latencies, 99):.2f}",
            f"{http.rate() / forward.rate():.0%}", http.round_ratios(forward), f"{http_p50 - forward_p50:+.2f}",
            f"{forward.cpu_ms(forward.cpu):.2f}", f"{http.cpu_ms(http.server_cpu):.2f}", f"{http.cpu_ms(http.cpu):.2f}",
        )
    console = Console(width=200)
    console.print(table)


if __name__ == "__main__":
    main()
