"""moto_seam.lean_imports: Step Functions' interpreter loads without moto's EC2, and Batch still works after it.

Each check runs in a fresh interpreter (this test process has long imported moto.batch elsewhere)."""
from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

from scones.local.emulator.moto_seam.lean_imports import BATCH_MODULES_LOADED_ALONE


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _source(module: str) -> str:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, f"{module} is gone"
    return Path(spec.origin).read_text()


def test_the_interpreter_imports_only_batch_utils_from_moto_batch():
    source = _source("moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_batch")
    imports = [line for line in source.splitlines() if "moto.batch" in line]
    assert imports == ["from moto.batch.utils import JobStatus"], (
        f"moto's Batch task now imports {imports}: re-check lean_imports.load_batch_enums_alone"
    )


def test_batch_utils_imports_only_the_modules_loaded_alone():
    relative = []
    for name in BATCH_MODULES_LOADED_ALONE:
        for node in ast.walk(ast.parse(_source(name))):
            if isinstance(node, ast.ImportFrom) and node.level:
                relative.append(f"moto.batch.{node.module}")
    assert set(relative) <= set(BATCH_MODULES_LOADED_ALONE), (
        f"moto.batch.utils/exceptions now import {relative} relatively: load them alone too, in order"
    )


def test_step_functions_install_leaves_ec2_unimported_and_batch_whole_afterwards():
    out = _run("""
        import sys
        from scones.local.emulator import moto_seam
        moto_seam.install_step_functions()
        print("ec2", "moto.ec2" in sys.modules, "batch", "moto.batch" in sys.modules)
        import boto3, moto.batch
        from moto import mock_aws
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_batch
        print("same", state_task_service_batch.JobStatus is moto.batch.models.JobStatus)
        with mock_aws():
            client = boto3.client("batch", region_name="us-east-1")
            print("queues", client.describe_job_queues()["jobQueues"])
    """)
    assert "ec2 False batch False" in out, f"installing Step Functions imported EC2 or Batch again: {out}"
    assert "same True" in out, "Batch's JobStatus is two classes: the interpreter's and Batch's own"
    assert "queues []" in out, out
