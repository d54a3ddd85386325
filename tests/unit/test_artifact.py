"""model.tar.gz packing, safe extraction and loading the handlers as AWS's container does."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import torch

from scones.model import artifact
from scones.model.code.inference import RESNET_ARCHITECTURE, ResNet18Cifar


@pytest.fixture
def tiny_model_dir(tmp_path: Path) -> Path:
    """An untrained but complete model dir (a ResNet, as artifacts before the ConvNet were): packing and loading."""
    torch.manual_seed(0)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    torch.save(ResNet18Cifar(2, width=4).state_dict(), model_dir / "model.pth")
    meta = {"architecture": RESNET_ARCHITECTURE, "width": 4, "class_names": ["bicycle", "motorcycle"],
            "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "image_size": 32, "metrics": {}}
    (model_dir / "model.json").write_text(json.dumps(meta))
    (model_dir / "baseline.json").write_text("{}")
    artifact.write_code_dir(model_dir)
    return model_dir


def test_pack_then_extract_gives_the_sagemaker_layout(tiny_model_dir, tmp_path):
    tarball = artifact.pack_artifact(tiny_model_dir, tmp_path / "out" / "model.tar.gz")
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    assert {"model.pth", "model.json", "baseline.json", "code/inference.py", "code/requirements.txt"} <= names
    extracted = artifact.extract_artifact(tarball, tmp_path / "x")
    assert (extracted / "code" / "inference.py").read_bytes() == artifact.INFERENCE_SOURCE.read_bytes()


def test_extract_works_where_tarfile_has_no_data_filter(tiny_model_dir, tmp_path, monkeypatch):
    """Python before 3.11.4 (Debian 12's 3.11.2, the offline images') has no `filter=`: same result."""
    tarball = artifact.pack_artifact(tiny_model_dir, tmp_path / "out" / "model.tar.gz")
    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    real_extractall = tarfile.TarFile.extractall

    def old_extractall(self, path=".", members=None, *, numeric_owner=False, **kwargs):
        assert "filter" not in kwargs, "Python 3.11.2 rejects filter="
        return real_extractall(self, path, members, numeric_owner=numeric_owner)

    monkeypatch.setattr(tarfile.TarFile, "extractall", old_extractall)
    extracted = artifact.extract_artifact(tarball, tmp_path / "x")
    assert (extracted / "code" / "inference.py").read_bytes() == artifact.INFERENCE_SOURCE.read_bytes()
    assert json.loads((extracted / "model.json").read_text())
    assert (extracted / "code").stat().st_mode & 0o777 == 0o755


def test_pack_refuses_an_incomplete_dir(tiny_model_dir, tmp_path):
    (tiny_model_dir / "baseline.json").unlink()
    with pytest.raises(artifact.InvalidArtifact, match="baseline.json"):
        artifact.pack_artifact(tiny_model_dir, tmp_path / "model.tar.gz")


def _tar_with(tmp_path: Path, member: tarfile.TarInfo, payload: bytes = b"x") -> Path:
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        member.size = len(payload) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(payload) if member.isfile() else None)
    return path


@pytest.mark.parametrize("name", ["../escape.txt", "/tmp/absolute.txt", "code/../../escape.txt"])
def test_extract_refuses_path_traversal(tmp_path, name):
    evil = _tar_with(tmp_path, tarfile.TarInfo(name))
    with pytest.raises(artifact.UnsafeArtifact):
        artifact.extract_artifact(evil, tmp_path / "dest")
    assert not (tmp_path / "escape.txt").exists()


def test_extract_refuses_links(tmp_path):
    link = tarfile.TarInfo("code/inference.py")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    with pytest.raises(artifact.UnsafeArtifact, match="not a plain file"):
        artifact.extract_artifact(_tar_with(tmp_path, link), tmp_path / "dest")


def test_load_imports_the_artifacts_own_code_as_inference(tiny_model_dir):
    loaded = artifact.load_artifact(tiny_model_dir)
    assert loaded.module.__name__ == "inference"
    assert Path(loaded.module.__file__) == tiny_model_dir / "code" / "inference.py"
    assert loaded.model.class_names == ["bicycle", "motorcycle"]
    assert not loaded.model.net.training


def test_model_fn_uses_the_weights_only_loader(tiny_model_dir, monkeypatch):
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    artifact.load_artifact(tiny_model_dir)
    assert calls == [True]


def test_model_fn_refuses_a_pickled_object(tiny_model_dir):
    torch.save({"conv1.weight": object()}, tiny_model_dir / "model.pth")
    with pytest.raises(Exception, match="[Ww]eights only load failed"):
        artifact.load_artifact(tiny_model_dir)


def test_model_fn_sets_the_artifacts_normalisation(tiny_model_dir):
    loaded = artifact.load_artifact(tiny_model_dir)
    assert loaded.module._normalisation["mean"] == (0.5, 0.5, 0.5)


def test_model_fn_serves_channels_last_on_cpu_with_the_same_answers(tiny_model_dir):
    loaded = artifact.load_artifact(tiny_model_dir)
    net = loaded.model.net
    assert net.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    reference = ResNet18Cifar(2, width=4)
    reference.load_state_dict(torch.load(tiny_model_dir / "model.pth", weights_only=True))
    batch = torch.randn(5, 3, 32, 32)
    with torch.inference_mode():
        assert torch.allclose(net(batch), reference.eval()(batch), atol=1e-5)
