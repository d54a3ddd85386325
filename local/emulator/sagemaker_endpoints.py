"""The SageMaker control plane of the embedded stack: each endpoint is real model server processes.

moto records Models, EndpointConfigs and Endpoints; `moto_seam.install_sagemaker_control_plane`
hands every CreateEndpoint / UpdateEndpoint / DeleteEndpoint to this module, which does what
SageMaker does with an instance fleet: download each variant's `model.tar.gz` from the (local)
S3, start `python -m scones.model.server` on it (the artifact's own code/inference.py, as AWS's
PyTorch container serves it), and report `InService` once `/ping` answers 200, or `Failed` with
a FailureReason. An update starts the new fleet and stops the old one only once the new one is
healthy (no availability loss, as AWS documents for UpdateEndpoint).

Servers stay in the moto host's process group, so stopping the stack stops them too. The first
server started may be a standby process that imported torch before the endpoint existed
(model_server_standby: `scones up` asks for one); it behaves as a new process would.
"""
from __future__ import annotations

import json
import logging
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scones.local.emulator.model_server_standby import StandbyModelServer
from scones.local.emulator.ports import free_port
from scones.model.config import FAKE_CREDENTIALS, parse_s3_uri

log = logging.getLogger("scones.local.emulator.sagemaker")

READY_TIMEOUT_S = 180.0  # importing torch and loading the model on two busy cores
PING_POLL_S = 0.05  # a /ping is cheap; the endpoint is InService (and `scones up` ready) no later than needed
STOP_TIMEOUT_S = 15.0  # the server flushes its data-capture buffer on SIGTERM
# A local "instance" shares this machine's cores with moto, the Lambda environments and everything
# else: one intra-op thread per model server unless the shell or the Model's Environment says
# otherwise. A second OpenMP thread gains little on one small image and, on busy cores, turns a
# 6 ms forward pass into 16-120 ms while its team waits for a core (measured on the 2-core machine).
LOCAL_TORCH_THREADS = "1"


@dataclass(frozen=True)
class VariantSpec:
    """One ProductionVariant of an EndpointConfig, with its Model's primary container."""

    variant_name: str
    model_name: str
    model_data_url: str
    image: str
    environment: dict[str, str]
    weight: float = 1.0


@dataclass(frozen=True)
class EndpointRequest:
    """What CreateEndpoint / UpdateEndpoint asks for, as plain data (the seam reads moto's objects)."""

    endpoint_name: str
    account_id: str
    region: str
    config_name: str
    variants: tuple[VariantSpec, ...]
    data_capture: dict[str, Any] = field(default_factory=dict)


# report(status, failure_reason, applied_config): the seam writes it into moto's endpoint record.
StatusReport = Callable[[str, str | None, str | None], None]


class EndpointStartFailed(RuntimeError):
    """A variant's server could not be started; the message is the endpoint's FailureReason."""


@dataclass
class ModelServer:
    """One running model server: a variant's 'instance'."""

    variant: str
    weight: float
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    model_dir: Path

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.model_dir, ignore_errors=True)

    def describe(self) -> dict[str, Any]:
        return {"variant": self.variant, "url": self.url, "pid": self.process.pid, "alive": self.process.poll() is None}


@dataclass
class Endpoint:
    name: str
    account_id: str
    status: str
    request: EndpointRequest
    fleet: list[ModelServer] = field(default_factory=list)


@dataclass(frozen=True)
class Route:
    """Where an invocation goes, or why it cannot (error_code is AWS's, e.g. ValidationError)."""

    server: ModelServer | None
    error_code: str = ""
    status: int = 200
    message: str = ""


def server_environment(aws_endpoint_url: str, region: str, variant_environment: dict[str, str]) -> dict[str, str]:
    """A model server's environment: this one without AWS_*, the Model's Environment, the local AWS endpoint."""
    env = {"OMP_NUM_THREADS": LOCAL_TORCH_THREADS, **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}}
    env.update({**variant_environment, **FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": aws_endpoint_url,
                "AWS_REGION": region, "AWS_DEFAULT_REGION": region, "PYTHONUNBUFFERED": "1"})
    return env


def _ping(url: str) -> tuple[int | None, str, bytes]:
    """(status, x-amzn-ErrorType, body) of GET /ping; status None while nothing answers."""
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
            return response.status, "", b""
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("x-amzn-ErrorType", ""), error.read()
    except (OSError, ValueError):
        return None, "", b""


def _message(body: bytes) -> str:
    try:
        return str(json.loads(body)["message"])
    except (ValueError, KeyError, TypeError):
        return body.decode(errors="replace")


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class EndpointControlPlane:
    """Starts, replaces and stops the model servers behind each endpoint; routes invocations."""

    def __init__(self, aws_endpoint_url: str, work_dir: Path, *, ready_timeout_s: float = READY_TIMEOUT_S,
                 standby: StandbyModelServer | None = None) -> None:  # fmt: skip
        self.aws_endpoint_url = aws_endpoint_url
        self.work_dir = work_dir
        self.ready_timeout_s = ready_timeout_s
        self._endpoints: dict[str, Endpoint] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._standby = standby  # claimed by the first server started (model_server_standby)

    # --- control plane: called by the seam from moto's request threads --------------------------

    def create(self, request: EndpointRequest, report: StatusReport) -> None:
        """Status Creating now; the fleet starts in the background."""
        with self._lock:
            self._endpoints[request.endpoint_name] = Endpoint(request.endpoint_name, request.account_id, "Creating", request)
        self._in_background(request, report, updating=False)

    def update(self, request: EndpointRequest, report: StatusReport) -> None:
        """Status Updating; the old fleet serves until the new one is healthy."""
        with self._lock:
            endpoint = self._endpoints[request.endpoint_name]
            endpoint.status = "Updating"
        self._in_background(request, report, updating=True)

    def delete(self, endpoint_name: str) -> None:
        """Stop the endpoint's servers (before DeleteEndpoint returns: nothing keeps running)."""
        with self._lock:
            endpoint = self._endpoints.pop(endpoint_name, None)
        for server in endpoint.fleet if endpoint else []:
            server.stop()

    def close(self) -> None:
        """Stop every server (the moto host is shutting down)."""
        self._closed = True
        standby, self._standby = self._standby, None
        if standby is not None:
            standby.stop()
        for name in list(self._endpoints):
            self.delete(name)

    # --- data plane ----------------------------------------------------------------------------

    def route(self, endpoint_name: str, account_id: str, target_variant: str | None = None) -> Route:
        """The server an InvokeEndpoint goes to, by variant weight unless a TargetVariant is named."""
        endpoint = self._endpoints.get(endpoint_name)
        if endpoint is None or not endpoint.fleet or endpoint.status not in ("InService", "Updating"):
            # A Creating or Failed endpoint has no fleet to route to: AWS answers as for an unknown one.
            account = endpoint.account_id if endpoint else account_id
            return Route(None, "ValidationError", 400, f"Endpoint {endpoint_name} of account {account} not found.")
        fleet = endpoint.fleet
        if target_variant:
            named = [server for server in fleet if server.variant == target_variant]
            if not named:
                return Route(None, "ValidationError", 400,
                             f"TargetVariant {target_variant} does not exist on endpoint {endpoint_name}.")
            return Route(random.choice(named))
        return Route(random.choices(fleet, weights=[max(s.weight, 0.0) or 1e-9 for s in fleet])[0])

    def describe(self) -> list[dict[str, Any]]:
        """Every endpoint with its status and servers (the moto host's /_scones/sagemaker/endpoints)."""
        return [
            {"EndpointName": e.name, "EndpointStatus": e.status, "servers": [s.describe() for s in e.fleet]}
            for e in list(self._endpoints.values())
        ]

    def stop_servers(self, endpoint_name: str) -> list[int]:
        """Stop an endpoint's servers but keep the endpoint (an instance failure, for tests and demos)."""
        endpoint = self._endpoints.get(endpoint_name)
        servers = list(endpoint.fleet) if endpoint else []
        for server in servers:
            server.stop()
        return [server.process.pid for server in servers]

    def restart_servers(self, endpoint_name: str) -> None:
        """Replace an endpoint's servers with new ones on the same config, waiting until they are healthy."""
        endpoint = self._endpoints[endpoint_name]
        fleet = self._start_fleet(endpoint.request)
        with self._lock:
            old, endpoint.fleet = endpoint.fleet, fleet
        for server in old:
            server.stop()

    # --- the fleet -----------------------------------------------------------------------------

    def _in_background(self, request: EndpointRequest, report: StatusReport, *, updating: bool) -> None:
        thread = threading.Thread(
            target=self._deploy, args=(request, report, updating), name=f"endpoint-{request.endpoint_name}", daemon=True
        )
        thread.start()

    def _deploy(self, request: EndpointRequest, report: StatusReport, updating: bool) -> None:
        started = time.monotonic()
        try:
            fleet = self._start_fleet(request)
        except EndpointStartFailed as error:
            log.warning("endpoint %s: %s", request.endpoint_name, error)
            with self._lock:
                endpoint = self._endpoints.get(request.endpoint_name)
                if endpoint is not None and not updating:
                    endpoint.status = "Failed"
                elif endpoint is not None:
                    endpoint.status = "InService" if endpoint.fleet else "Failed"
                status = endpoint.status if endpoint else "Failed"
            report(status, str(error), None)
            return
        with self._lock:
            endpoint = self._endpoints.get(request.endpoint_name)
            if endpoint is None or self._closed:  # deleted while starting
                old, fleet_to_stop = [], fleet
            else:
                old, endpoint.fleet, fleet_to_stop = endpoint.fleet, fleet, []
                endpoint.status, endpoint.request = "InService", request
        for server in old + fleet_to_stop:
            server.stop()
        if not fleet_to_stop:
            log.info("endpoint %s InService in %.1f s", request.endpoint_name, time.monotonic() - started)
            report("InService", None, request.config_name)

    def _start_fleet(self, request: EndpointRequest) -> list[ModelServer]:
        fleet: list[ModelServer] = []
        try:
            for variant in request.variants:
                fleet.append(self._start_server(request, variant))
            for server in fleet:
                self._wait_healthy(server)
        except BaseException:
            for server in fleet:
                server.stop()
            raise
        return fleet

    def _start_server(self, request: EndpointRequest, variant: VariantSpec) -> ModelServer:
        model_dir = Path(os.path.join(self.work_dir, f"{request.endpoint_name}-{variant.variant_name}-{time.time_ns()}"))
        model_dir.mkdir(parents=True)
        artifact = self._download(variant, model_dir / "model.tar.gz", request.region)
        port = free_port()
        server_args = [
            "--model", str(artifact), "--host", "127.0.0.1", "--port", str(port),
            "--endpoint-name", request.endpoint_name, "--variant", variant.variant_name,
        ]  # fmt: skip
        capture = request.data_capture or {}
        if capture.get("EnableCapture"):
            server_args += ["--capture-s3-uri", capture["DestinationS3Uri"],
                            "--capture-percent", str(capture.get("InitialSamplingPercentage", 100))]  # fmt: skip
        log_path = model_dir.parent / f"{model_dir.name}.log"
        env = server_environment(self.aws_endpoint_url, request.region, variant.environment)
        process = self._claim_standby(server_args, env, log_path)
        if process is None:
            argv = [sys.executable, "-m", "scones.model.server", *server_args]
            with open(log_path, "ab") as log_file:  # same process group as the moto host: stopped with it
                process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=env)
        return ModelServer(variant.variant_name, variant.weight, f"http://127.0.0.1:{port}", process, log_path, model_dir)

    def _claim_standby(self, server_args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes] | None:
        with self._lock:
            standby, self._standby = self._standby, None
        return standby.claim(server_args, env, log_path) if standby is not None else None

    def _download(self, variant: VariantSpec, path: Path, region: str) -> Path:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        failed = (f'Failed to download model data for container "{variant.model_name}" from URL: '
                  f'"{variant.model_data_url}". Please ensure that there is an object located at the URL')  # fmt: skip
        try:
            bucket, key = parse_s3_uri(variant.model_data_url)
            credentials = {name.lower(): value for name, value in FAKE_CREDENTIALS.items()}
            s3 = boto3.client("s3", endpoint_url=self.aws_endpoint_url, region_name=region, **credentials)
            s3.download_file(bucket, key, str(path))
        except (ValueError, ClientError, BotoCoreError) as error:
            raise EndpointStartFailed(f"{failed}: {error}") from error
        return path

    def _wait_healthy(self, server: ModelServer) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        failed = f"The primary container for production variant {server.variant} did not pass the ping health check"
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise EndpointStartFailed(f"{failed}: the server exited ({server.process.returncode}): "
                                          f"{_log_tail(server.log_path)}")  # fmt: skip
            status, error_type, body = _ping(server.url)
            if status == 200:
                return
            if error_type == "ModelUnavailable":  # the artifact could not be loaded: it never will be
                raise EndpointStartFailed(f"{failed}: {_message(body)}")
            time.sleep(PING_POLL_S)
        raise EndpointStartFailed(f"{failed} within {self.ready_timeout_s:.0f} s: {_log_tail(server.log_path)}")
