"""Function zips: deterministic, minimal, and importable the way Lambda imports them."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from io import BytesIO

import pytest

from scones.local.deploy.lambda_package import UnknownFunction, build_function_zip, code_sha256, handler_string


def test_zip_holds_only_common_and_the_function():
    names = zipfile.ZipFile(BytesIO(build_function_zip("filter_inferences"))).namelist()
    assert "lambdas/__init__.py" in names
    assert "lambdas/filter_inferences/handler.py" in names and "lambdas/common/log.py" in names
    assert not any(n.startswith(("lambdas/classify_image", "lambdas/serialize_image")) for n in names)
    assert not any("__pycache__" in n for n in names)


def test_same_source_gives_the_same_bytes_and_digest():
    assert code_sha256(build_function_zip("classify_image")) == code_sha256(build_function_zip("classify_image"))


def test_unknown_function_is_refused():
    with pytest.raises(UnknownFunction):
        build_function_zip("lambda")


def test_handler_runs_from_the_zip_alone(tmp_path):
    archive = tmp_path / "function.zip"
    archive.write_bytes(build_function_zip("filter_inferences"))
    module, attr = handler_string("filter_inferences").rsplit(".", 1)
    script = (
        f"import json, sys; sys.path.insert(0, {str(archive)!r}); "
        f"from {module} import {attr}; "
        f"print(json.dumps({attr}({{'inferences': [0.99, 0.01], 'labels': ['bicycle', 'motorcycle']}}, None)))"
    )
    result = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60, check=True)
    assert json.loads(result.stdout.splitlines()[-1])["label"] == "bicycle"
