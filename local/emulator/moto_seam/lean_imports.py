"""The seam's import section: what moto imports that the embedded stack never uses, left unimported.

moto's Step Functions interpreter imports `moto.batch.utils` for one enum (`JobStatus`, for Batch
service tasks), and importing it runs `moto/batch/__init__.py`, which imports Batch's backend and
with it all of EC2's (`moto.ec2.models.availability_zones_and_regions` alone loads botocore's EC2
model for its region list): 1.8 s of CPU in a quiet process, on the critical path of `scones up`
(CreateStateMachine waits for the interpreter) and competing for the moto host's one GIL with the
deploy's requests. `load_batch_enums_alone` loads `moto/batch/exceptions.py` and `utils.py` as the
modules they are, without their package's `__init__`; importing `moto.batch` later (a Batch request)
runs the package as usual and finds the same two modules, so `JobStatus` is one class throughout.
"""
from __future__ import annotations

import importlib.util
import sys

# What `moto.batch.utils` imports relatively, in import order (tests/unit/test_moto_seam_imports.py checks it).
BATCH_MODULES_LOADED_ALONE = ("moto.batch.exceptions", "moto.batch.utils")


def load_batch_enums_alone() -> None:
    """Load moto.batch's exceptions and utils modules without moto/batch/__init__.py (and so without EC2)."""
    if "moto.batch" in sys.modules:
        return
    package = importlib.util.find_spec("moto.batch")  # finds the package without executing it
    if package is None or not package.submodule_search_locations:
        raise ImportError("moto.batch is no longer a package: moto_seam.lean_imports must be re-checked")
    for name in BATCH_MODULES_LOADED_ALONE:
        if name in sys.modules:
            continue
        path = f"{package.submodule_search_locations[0]}/{name.rsplit('.', 1)[1]}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"{path} is gone: moto_seam.lean_imports must be re-checked")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
