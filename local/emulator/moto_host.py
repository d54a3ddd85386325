"""A moto server process that runs Lambda code and Step Functions executions.

`python -m scones.local.emulator.moto_host --host 127.0.0.1 --port P` serves every moto service over
HTTP (werkzeug, as ThreadedMotoServer does) with two changes from plain moto, both through
`moto_seam`:
Lambda invocations run in local execution environments (AWS's `awslambdaric` against our Runtime
API, scones.local.emulator.lambda_runner) and Step Functions executes state machines (Lambda tasks
in-process, JSONata, S3 → EventBridge triggers: `moto_seam.install_step_functions`, loaded in the
background while requests other than /moto-api wait for it). MOTO_PORT is set to the port actually
bound (other service tasks call it).
"""
from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scones.local.emulator import moto_seam
from scones.local.emulator.lambda_runner import DEFAULT_MAX_QUEUED_PER_FUNCTION, DEFAULT_MAX_WORKERS_PER_FUNCTION, ProcessLambdaRunner


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


def _after(installed: threading.Event, app: Callable) -> Callable:
    """The WSGI app, holding every request but moto's own API (the readiness probe) until `installed`."""

    def gated(environ: dict, start_response: Callable) -> Any:
        if not environ.get("PATH_INFO", "").startswith("/moto-api"):
            installed.wait()
        return app(environ, start_response)

    return gated


def serve(host: str, port: int, work_dir: Path | None, max_workers: int) -> None:
    server = moto_seam.make_server(host, port)
    bound_port = server.server_port
    server.app = _after(_install_step_functions_in_background(), server.app)

    scratch = Path(work_dir or tempfile.mkdtemp(prefix="scones-lambda-"))
    runner = ProcessLambdaRunner(f"http://{host}:{bound_port}", scratch, max_workers_per_function=max_workers)
    uninstall = moto_seam.install_lambda_invoker(runner)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    print(f"moto_host ready on http://{host}:{bound_port} (Lambda work dir {scratch})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        uninstall()
        runner.close()
        if work_dir is None:
            shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m scones.local.emulator.moto_host",
        description="moto server with Lambda functions run as local processes and Step Functions execution on.",
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
    args = parser.parse_args(argv)
    if args.max_workers_per_function < 1:
        parser.error("--max-workers-per-function must be at least 1")
    serve(args.host, args.port, args.work_dir, args.max_workers_per_function)
    sys.exit(0)


if __name__ == "__main__":
    main()
