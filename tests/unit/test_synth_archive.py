"""The generated set: real CIFAR-100 format, learnable families, reproducible."""
from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from scones.model import synth


def test_all_hundred_fine_labels_in_order():
    assert len(synth.CIFAR100_FINE_LABEL_NAMES) == 100 and len(set(synth.CIFAR100_FINE_LABEL_NAMES)) == 100
    assert synth.CIFAR100_FINE_LABEL_NAMES.index("bicycle") == 8
    assert synth.CIFAR100_FINE_LABEL_NAMES.index("motorcycle") == 48
    assert len(synth.FINE_TO_COARSE) == 100 and max(synth.FINE_TO_COARSE) == 19
    assert synth.CIFAR100_COARSE_LABEL_NAMES[synth.FINE_TO_COARSE[8]] == "vehicles_1"


def test_archive_has_the_real_layout(synth_archive):
    with tarfile.open(synth_archive, "r:gz") as tar:
        assert sorted(tar.getnames()) == ["cifar-100-python/meta", "cifar-100-python/test", "cifar-100-python/train"]
        train = pickle.loads(tar.extractfile("cifar-100-python/train").read(), encoding="bytes")
    assert {b"data", b"fine_labels", b"coarse_labels", b"filenames", b"batch_label"} <= train.keys()
    assert train[b"data"].dtype == np.uint8 and train[b"data"].shape == (400, 3072)
    assert train[b"coarse_labels"][0] == 18
    assert train[b"filenames"][0].decode().endswith(".png")


def test_same_seed_same_archive_content(tmp_path):
    first = synth.write_synth_archive(tmp_path / "a", train_per_class=3, test_per_class=2, seed=5)
    second = synth.write_synth_archive(tmp_path / "b", train_per_class=3, test_per_class=2, seed=5)

    def read(path):
        with tarfile.open(path) as archive:
            return pickle.loads(archive.extractfile("cifar-100-python/train").read(), encoding="bytes")

    assert np.array_equal(read(first)[b"data"], read(second)[b"data"])


def test_images_vary_within_a_class():
    rng = np.random.default_rng(0)
    images = np.stack([synth.draw_image(0, rng) for _ in range(10)]).astype(float)
    assert images.std(axis=0).mean() > 20  # not a constant image per class


def test_unknown_class_name():
    with pytest.raises(synth.UnknownClassName, match="velocipede"):
        synth.write_synth_archive(Path("/nonexistent"), ["bicycle", "velocipede"])
