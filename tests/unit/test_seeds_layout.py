"""The seeds' data layout (train/, test/, train.lst, test.lst beside them, RGBA PNGs, no classes.json)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from scones.model import cifar
from scones.model.training_data import TrainingDataMissing, load_split

ROWS = {"train": [(16, 0, "bicycle_s_000017.png"), (30, 1, "bike_s_000001.png"), (31, 1, "motorcycle_s_000002.png")],
        "test": [(27, 0, "bicycle_s_000030.png"), (40, 1, "bike_s_000041.png")]}


def _seeds_folder(root: Path) -> Path:
    for split, rows in ROWS.items():
        (root / split).mkdir(parents=True)
        for _, label, name in rows:
            Image.new("RGBA", (32, 32), (200 * label, 10, 10, 255)).save(root / split / name)
        (root / f"{split}.lst").write_text("".join(f"{i}\t{label}\t{name}\n" for i, label, name in rows))
    return root


def test_manifest_beside_the_split_folder_gives_the_labels(tmp_path: Path) -> None:
    root = _seeds_folder(tmp_path / "seeds")
    images, labels, classes = load_split(root / "train", None, ("bicycle", "motorcycle"))
    assert images.shape == (3, 3, 32, 32) and labels.tolist() == [0, 1, 1]  # bike_s_000001 is a motorcycle
    assert classes == ["bicycle", "motorcycle"]
    assert int(images[1, 0, 0, 0]) == 200  # RGBA read as RGB


def test_manifest_from_a_separate_channel_folder(tmp_path: Path) -> None:
    root = _seeds_folder(tmp_path / "seeds")
    channel = tmp_path / "train_lst"
    channel.mkdir()
    (root / "train.lst").rename(channel / "train.lst")
    assert cifar.find_manifest(root / "train", channel) == channel / "train.lst"
    with pytest.raises(TrainingDataMissing, match="no train.lst"):
        load_split(root / "train", None, ("bicycle", "motorcycle"))


def test_a_label_beyond_the_classes_is_a_named_error(tmp_path: Path) -> None:
    root = _seeds_folder(tmp_path / "seeds")
    (root / "train.lst").write_text("0\t2\tbicycle_s_000017.png\n")
    with pytest.raises(TrainingDataMissing, match="label 2.*--classes"):
        load_split(root / "train", None, ("bicycle", "motorcycle"))


def test_a_malformed_manifest_line_is_a_named_error(tmp_path: Path) -> None:
    root = _seeds_folder(tmp_path / "seeds")
    (root / "test.lst").write_text("0 0 bicycle_s_000030.png\n")
    with pytest.raises(cifar.InvalidArchive, match="line 1"):
        cifar.read_manifest(root / "test")


def test_stage_from_dir_writes_the_staged_layout(tmp_path: Path) -> None:
    root = _seeds_folder(tmp_path / "seeds")
    summary = cifar.stage_from_dir(root, tmp_path / "staged", ("bicycle", "motorcycle"))
    assert summary.counts == {"train": {"bicycle": 1, "motorcycle": 2}, "test": {"bicycle": 1, "motorcycle": 1}}
    staged = tmp_path / "staged"
    assert json.loads((staged / "train" / "classes.json").read_text()) == ["bicycle", "motorcycle"]
    assert (staged / "train" / "train.lst").read_text() == (root / "train.lst").read_text()
    with Image.open(staged / "test" / "bike_s_000041.png") as image:
        assert image.mode == "RGB"
    images, labels, _ = load_split(staged / "train", None, ("x", "y"))  # classes.json wins over the default
    assert labels.tolist() == [0, 1, 1]
