"""A moto server process that runs Lambda code and Step Functions executions.

`python -m scones.local.emulator.moto_host --host 127.0.0.1 --port P` serves every moto service over
HTTP (werkzeug, as ThreadedMotoServer does) with two changes from plain moto, both through
`moto_seam`:
Lambda invocations run in local execution environments (AWS's `awslambdaric` against our Runtime
API, scones.local.emulator.lambda_runner) and Step Functions executes state machines (Lambda tasks
in-process, JSONata, S3 → EventBridge triggers: `moto_seam.install_step_functions`, loaded in the
background while the requests that need it wait for it). MOTO_PORT is set to the port actually
bound (other service tasks call it).
SageMaker endpoints are real model server processes (scones.local.emulator.sagemaker_endpoints)
that InvokeEndpoint on this same URL reaches (scones.local.emulator.sagemaker_runtime);
`--prewarm-model-server` (what `scones up` passes) starts the first one before any endpoint exists.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scones.local.emulator import moto_seam
from scones.local.emulator.botocore_listing import share_service_listings
from scones.local.emulator.http_headers import install_fast_header_parsing, signed_service
from scones.local.emulator.lambda_runner import DEFAULT_MAX_QUEUED_PER_FUNCTION, DEFAULT_MAX_WORKERS_PER_FUNCTION, ProcessLambdaRunner
from scones.local.emulator.model_server_standby import StandbyModelServer
from scones.local.emulator.sagemaker_endpoints import EndpointControlPlane, server_environment
from scones.local.emulator.sagemaker_runtime import RuntimeRouter


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _install_step_functions_in_background() -> threading.Event:
    """Step Functions' interpreter takes seconds to import: it loads while `scones up` goes on."""
    installed = threading.Event()

    def install() -> None:
        try:
            moto_seam.install_step_functions()
        finally:
            installed.set()

    threading.Thread(target=install, name="install-step-functions", daemon=True).start()
    return installed


# How long a thread may hold the GIL while another waits for it (CPython's default: 5 ms). The host's
# threads mostly pass work to each other (a request thread, an execution's thread, a Runtime API
# thread, each a few hundred µs of Python at a time), so a thread woken by a reply waited up to 5 ms
# behind one busy with a JSON body. Four alternating pairs of bursts of 50: 13-17 % more executions/s
# in three of them (the fourth equal); sequential latency unchanged (bench/workflow.py figures in the README).
HOST_SWITCH_INTERVAL_S = 0.0005

# Services whose requests need none of install_step_functions' patches: they are served while it loads,
# so that `scones up` can upload the model and start the endpoint's model server meanwhile. S3 is among
# them but for its bucket notification calls (an S3 → EventBridge trigger is configured through those).
SERVED_WHILE_LOADING = frozenset({"sts", "iam", "sagemaker", "lambda", "logs", "s3"})


def _needs_step_functions(environ: dict) -> bool:
    """True for a request that must wait for install_step_functions (unsigned ones too, to be safe)."""
    if environ.get("PATH_INFO", "").startswith("/moto-api"):
        return False
    service = signed_service(environ)
    if service not in SERVED_WHILE_LOADING:
        return True
    return service == "s3" and "notification" in environ.get("QUERY_STRING", "")


def _after(installed: threading.Event, app: Callable) -> Callable:
    """The WSGI app, holding the requests that need Step Functions' patches until `installed`."""

    def gated(environ: dict, start_response: Callable) -> Any:
        if not installed.is_set() and _needs_step_functions(environ):
            installed.wait()
        return app(environ, start_response)

    return gated


def serve(host: str, port: int, work_dir: Path | None, max_workers: int, prewarm_model_server: bool = False,
          lambda_zygote: bool = True) -> None:  # fmt: skip
    scratch = Path(work_dir or tempfile.mkdtemp(prefix="scones-lambda-"))
    standby = None
    if prewarm_model_server:  # first: its torch import overlaps everything below and the deploy
        env = server_environment("", os.environ.get("AWS_REGION", ""), {})
        standby = StandbyModelServer.spawn(env, scratch / "sagemaker" / "model-server-standby.log")
    sys.setswitchinterval(HOST_SWITCH_INTERVAL_S)
    install_fast_header_parsing()
    share_service_listings()
    server = moto_seam.make_server(host, port)
    bound_port = server.server_port
    server.app = _after(_install_step_functions_in_background(), moto_seam.start_executions_after_response(server.app))

    runner = ProcessLambdaRunner(f"http://{host}:{bound_port}", scratch, max_workers_per_function=max_workers, zygote=lambda_zygote)
    uninstall = moto_seam.install_lambda_invoker(runner)
    plane = EndpointControlPlane(f"http://{host}:{bound_port}", scratch / "sagemaker", standby=standby)
    uninstall_plane = moto_seam.install_sagemaker_control_plane(plane)
    server.app = RuntimeRouter(server.app, plane, moto_seam.default_account_id())
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    print(f"moto_host ready on http://{host}:{bound_port} (Lambda work dir {scratch})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        plane.close()
        uninstall_plane()
        uninstall()
        runner.close()
        if work_dir is None:
            shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m scones.local.emulator.moto_host",
        description="moto server with Lambda functions run as local processes, Step Functions execution on, "
        "and SageMaker endpoints served by real model server processes.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=5000, help="port to bind; 0 picks a free one (default 5000)")
    parser.add_argument("--work-dir", type=Path, help="where function code is extracted (default: a new temp dir)")
    parser.add_argument(
        "--max-workers-per-function",
        type=int,
        default=DEFAULT_MAX_WORKERS_PER_FUNCTION,
        help=f"warm execution environments per function (default {DEFAULT_MAX_WORKERS_PER_FUNCTION}); more invocations "
        f"wait for one, up to {DEFAULT_MAX_QUEUED_PER_FUNCTION} per function, then get TooManyRequestsException",
    )
    parser.add_argument(
        "--prewarm-model-server",
        action="store_true",
        help="start one model server process (importing torch) at once, for the first CreateEndpoint to claim: "
        "an endpoint created soon after start is InService seconds sooner",
    )
    parser.add_argument(
        "--lambda-zygote",
        action=argparse.BooleanOptionalAction,
        default=os.environ.get("SCONES_LAMBDA_ZYGOTE", "1") != "0",
        help="fork Lambda execution environments from an interpreter that has imported boto3 (default on; "
        "SCONES_LAMBDA_ZYGOTE=0 turns it off): a cold start spends ~0.25 s less CPU",
    )
    args = parser.parse_args(argv)
    if args.max_workers_per_function < 1:
        parser.error("--max-workers-per-function must be at least 1")
    serve(args.host, args.port, args.work_dir, args.max_workers_per_function, args.prewarm_model_server, args.lambda_zygote)
    sys.exit(0)


if __name__ == "__main__":
    main()
