"""model.tar.gz in the SageMaker PyTorch layout: packing, safe extraction, loading the handlers.

Every consumer (the model server, tests, monitoring) goes through these functions, so the
artifact's own code/inference.py is the only serving code there is.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

INFERENCE_SOURCE = Path(__file__).parent / "code" / "inference.py"
ARTIFACT_FILES = ("model.pth", "model.json", "baseline.json")
INFERENCE_MODULE_NAME = "inference"


class UnsafeArtifact(ValueError):
    """The tarball holds a member that would land outside the extraction folder, or a link/device."""


class InvalidArtifact(ValueError):
    """The artifact lacks a file the SageMaker PyTorch layout requires."""


@dataclass
class LoadedArtifact:
    """An artifact's handler module and the model its model_fn returned."""

    model_dir: Path
    module: ModuleType
    model: Any


def artifact_class_names(path: Path, *, require_code: bool = False) -> tuple[str, ...]:
    """class_names from model.json of a model.tar.gz (read in place, no torch) or an extracted model dir."""
    try:
        if path.is_dir():
            if require_code and not (path / "code" / "inference.py").is_file():
                raise InvalidArtifact(f"{path} has no code/inference.py")
            return tuple(json.loads((path / "model.json").read_text())["class_names"])
        with tarfile.open(path, "r:*") as tar:
            members = {member.name.removeprefix("./"): member for member in tar.getmembers() if member.isfile()}
            if require_code and "code/inference.py" not in members:
                raise InvalidArtifact(f"{path} has no code/inference.py")
            if "model.json" not in members:
                raise InvalidArtifact(f"{path} has no model.json: not a model.tar.gz from `scones train`")
            meta = json.loads(tar.extractfile(members["model.json"]).read())  # type: ignore[union-attr]
        return tuple(meta["class_names"])
    except (OSError, tarfile.TarError, KeyError, json.JSONDecodeError) as error:
        raise InvalidArtifact(f"{path} is not a model.tar.gz with model.json: {error}") from error


def write_code_dir(model_dir: Path) -> None:
    """Copies the serving code into model_dir/code, as the SageMaker toolkit expects it."""
    code_dir = model_dir / "code"
    code_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(INFERENCE_SOURCE, code_dir / "inference.py")
    # The handlers need only what the official PyTorch inference container already has.
    (code_dir / "requirements.txt").write_text("")


def pack_artifact(model_dir: Path, out_path: Path) -> Path:
    """Tars a complete model dir (model.pth, model.json, baseline.json, code/) into model.tar.gz."""
    missing = [name for name in (*ARTIFACT_FILES, "code/inference.py") if not (model_dir / name).is_file()]
    if missing:
        raise InvalidArtifact(f"{model_dir} lacks {', '.join(missing)}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    with tarfile.open(partial, "w:gz") as tar:
        for name in (*ARTIFACT_FILES, "code"):
            tar.add(model_dir / name, arcname=name, filter=_reset_owner)
    partial.replace(out_path)
    return out_path


def _reset_owner(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def extract_artifact(path: Path, dest: Path) -> Path:
    """Extracts model.tar.gz into dest, refusing links, devices and paths that escape dest."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    with tarfile.open(path, "r:*") as tar:
        members = tar.getmembers()
        for member in members:
            target = (root / member.name).resolve()
            if not (member.isfile() or member.isdir()):
                raise UnsafeArtifact(f"{path}: member {member.name!r} is not a plain file or folder")
            if target != root and root not in target.parents:
                raise UnsafeArtifact(f"{path}: member {member.name!r} would extract outside {root}")
        _extract_data_only(tar, root, members)
    if not (root / "code" / "inference.py").is_file():
        raise InvalidArtifact(f"{path} has no code/inference.py")
    return root


def _extract_data_only(tar: tarfile.TarFile, root: Path, members: list[tarfile.TarInfo]) -> None:
    """tarfile's "data" filter where Python has it (3.11.4+); before that (Debian 12's 3.11.2), the
    members were already checked above, and owners and modes are reset the way the filter would."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(root, members=members, filter="data")
        return
    for member in members:
        member.uid = member.gid = 0
        member.uname = member.gname = ""
        member.mode = 0o755 if member.isdir() else (member.mode & 0o755) | 0o600
        tar.extract(member, root, set_attrs=member.isdir())


def load_inference_module(model_dir: Path) -> ModuleType:
    """Imports model_dir/code/inference.py as AWS's container does: code/ on sys.path, name 'inference'."""
    code_dir = Path(model_dir) / "code"
    source = code_dir / "inference.py"
    if not source.is_file():
        raise InvalidArtifact(f"{model_dir} has no code/inference.py")
    if str(code_dir) not in sys.path:
        sys.path.insert(0, str(code_dir))
    spec = importlib.util.spec_from_file_location(INFERENCE_MODULE_NAME, source)
    if spec is None or spec.loader is None:
        raise InvalidArtifact(f"{source} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[INFERENCE_MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module


def load_artifact(path: Path, workdir: Path | None = None) -> LoadedArtifact:
    """model.tar.gz or an extracted dir -> its handler module and loaded model."""
    path = Path(path)
    if path.is_dir():
        model_dir = path
    else:
        model_dir = extract_artifact(path, Path(workdir or tempfile.mkdtemp(prefix="scones-model-")))
    module = load_inference_module(model_dir)
    return LoadedArtifact(model_dir=model_dir, module=module, model=module.model_fn(str(model_dir)))
