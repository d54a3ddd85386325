"""Each function's deployment zip, built from lambdas/.

A zip holds the `lambdas` package with only `common/` and the function's own folder, so its
handler string is `lambdas.<function>.handler.lambda_handler`. Entries carry a fixed
timestamp: the same source gives the same bytes (and CodeSha256), so a re-deploy of
unchanged code changes nothing.
"""
from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path

import scones.lambdas

LAMBDAS_DIR = Path(scones.lambdas.__file__).parent
FUNCTIONS = ("serialize_image", "classify_image", "filter_inferences", "record_outcome")
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


class UnknownFunction(ValueError):
    """The name is not one of the workflow's functions."""


def handler_string(function: str) -> str:
    return f"lambdas.{function}.handler.lambda_handler"


def _sources(function: str, lambdas_dir: Path) -> list[Path]:
    roots = [lambdas_dir / "common", lambdas_dir / function]
    files = [lambdas_dir / "__init__.py"]
    for root in roots:
        files += sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    return files


def build_function_zip(function: str, lambdas_dir: Path = LAMBDAS_DIR) -> bytes:
    """The zip's bytes, deterministic for a given source tree."""
    if function not in FUNCTIONS:
        raise UnknownFunction(f"{function!r} is not one of {FUNCTIONS}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in _sources(function, lambdas_dir):
            arcname = "lambdas/" + path.relative_to(lambdas_dir).as_posix()
            info = zipfile.ZipInfo(arcname, date_time=_FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def code_sha256(zip_bytes: bytes) -> str:
    """The digest as Lambda reports it (CodeSha256: base64 of SHA-256)."""
    return base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode("ascii")
