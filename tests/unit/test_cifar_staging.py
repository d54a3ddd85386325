"""CIFAR-100 parsing, class selection, staging and checksums, on generated archives."""
from __future__ import annotations

import io
import json
import os
import pickle
import socket
import tarfile

import numpy as np
import pytest
from PIL import Image

from scones.model import cifar


def test_parser_reads_meta_and_splits(synth_archive):
    archive = cifar.read_archive(synth_archive)
    assert len(archive.fine_label_names) == 100
    assert archive.fine_label_names[8] == "bicycle" and archive.fine_label_names[48] == "motorcycle"
    assert archive.splits["train"].data.shape == (400, 3072) and archive.splits["train"].data.dtype == np.uint8
    assert archive.splits["test"].data.shape == (80, 3072)
    assert set(archive.splits["train"].fine_labels) == {8, 48}
    assert archive.generated_note


def test_parser_refuses_code_in_pickles():
    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with pytest.raises(cifar.InvalidArchive, match="refusing to unpickle"):
        cifar.parse_pickle(pickle.dumps({b"data": Exploit()}, protocol=2))


def test_parser_rejects_a_non_cifar_tarball(tmp_path):
    path = tmp_path / "other.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("readme.txt")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(cifar.InvalidArchive, match="lacks meta, test, train"):
        cifar.read_archive(path)
    (tmp_path / "junk.tar.gz").write_bytes(b"junk")
    with pytest.raises(cifar.InvalidArchive):
        cifar.read_archive(tmp_path / "junk.tar.gz")


def test_rows_become_rgb_images_plane_by_plane():
    row = np.concatenate([np.full(1024, 200), np.full(1024, 100), np.full(1024, 50)]).astype(np.uint8)
    image = cifar.row_to_image(row)
    assert image.mode == "RGB" and image.size == (32, 32)
    assert image.getpixel((5, 7)) == (200, 100, 50)


def test_staging_writes_rgb_pngs_matching_the_pickle(staged_data, synth_archive):
    archive = cifar.read_archive(synth_archive)
    split = archive.splits["test"]
    row = split.fine_labels.index(48)
    with Image.open(staged_data / "test" / split.filenames[row]) as image:
        assert image.mode == "RGB"
        assert np.array_equal(np.asarray(image).transpose(2, 0, 1).reshape(-1), split.data[row])


def test_manifests_and_classes_json(staged_data):
    assert json.loads((staged_data / "classes.json").read_text()) == ["bicycle", "motorcycle"]
    for split, count in (("train", 400), ("test", 80)):
        assert json.loads((staged_data / split / "classes.json").read_text()) == ["bicycle", "motorcycle"]
        lines = (staged_data / split / f"{split}.lst").read_text().splitlines()
        assert len(lines) == count
        for index, line in enumerate(lines):
            number, label, relative = line.split("\t")
            assert int(number) == index
            assert relative.startswith(("bicycle_s_", "motorcycle_s_")) and relative.endswith(".png")
            assert int(label) == (0 if relative.startswith("bicycle") else 1)
            assert (staged_data / split / relative).is_file()
        assert cifar.read_manifest(staged_data / split)[0][2] == lines[0].split("\t")[2]


def test_class_order_sets_the_label_ids(synth_archive, tmp_path):
    summary = cifar.stage_archive(synth_archive, tmp_path, ["motorcycle", "bicycle"])
    assert summary.counts["train"] == {"motorcycle": 200, "bicycle": 200}
    first = (tmp_path / "train" / "train.lst").read_text().splitlines()[0].split("\t")
    assert first[1] == ("0" if first[2].startswith("motorcycle") else "1")


def test_selecting_a_class_absent_from_the_splits_stages_nothing_for_it(synth_archive, tmp_path):
    summary = cifar.stage_archive(synth_archive, tmp_path, ["bicycle", "apple"])
    assert summary.counts["test"] == {"bicycle": 40, "apple": 0}


def test_unknown_class_suggests_close_names(synth_archive, tmp_path):
    with pytest.raises(cifar.UnknownClass, match="did you mean motorcycle"):
        cifar.stage_archive(synth_archive, tmp_path, ["bicycle", "motorbike"])


def test_checksum_mismatch_is_named(tmp_path):
    path = tmp_path / "cifar-100-python.tar.gz"
    path.write_bytes(b"truncated download")
    with pytest.raises(cifar.ChecksumMismatch, match=cifar.CIFAR100_MD5):
        cifar.verify_md5(path, cifar.CIFAR100_MD5)
    with pytest.raises(cifar.ChecksumMismatch):
        cifar.download_archive(tmp_path)  # a bad cached file is never used


def test_the_official_checksum_is_torchvisions():
    from torchvision.datasets import CIFAR100

    assert cifar.CIFAR100_MD5 == CIFAR100.tgz_md5 and cifar.CIFAR100_URL == CIFAR100.url


def test_offline_download_names_the_url_and_archive_flag(tmp_path):
    with socket.socket() as sock:  # a port nobody listens on: the connection is refused, like offline
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/cifar-100-python.tar.gz"
    with pytest.raises(cifar.DownloadFailed) as caught:
        cifar.download_archive(tmp_path / "cache", url=url)
    assert url in str(caught.value) and "--archive" in str(caught.value)
    assert not list((tmp_path / "cache").iterdir())
