"""`scones data stage`: download over real HTTP with the checksum, and idempotent upload to moto S3."""
from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from scones.model import cifar
from scones.model.cli import data

pytestmark = pytest.mark.integration


@pytest.fixture
def archive_url(synth_archive: Path) -> Iterator[str]:
    """The synth archive served by a real HTTP server on 127.0.0.1."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(synth_archive.parent))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{synth_archive.name}"
    server.shutdown()
    server.server_close()


def test_download_verifies_and_caches(archive_url, synth_archive, tmp_path):
    md5 = cifar.file_md5(synth_archive)
    path = cifar.download_archive(tmp_path, url=archive_url, md5=md5)
    assert path.read_bytes() == synth_archive.read_bytes()
    assert cifar.download_archive(tmp_path, url="http://127.0.0.1:9/never-fetched", md5=md5) == path


def test_download_with_wrong_checksum_keeps_nothing(archive_url, tmp_path):
    with pytest.raises(cifar.ChecksumMismatch):
        cifar.download_archive(tmp_path, url=archive_url, md5=cifar.CIFAR100_MD5)
    assert list(tmp_path.iterdir()) == []


def test_upload_is_idempotent(moto_session, staged_data, tmp_path):
    staged_data = Path(shutil.copytree(staged_data, tmp_path / "staged"))
    s3 = moto_session.client("s3")
    s3.create_bucket(Bucket="scones-data")
    first = cifar.upload_staged(moto_session, staged_data, "scones-data", "cifar/")
    assert first.uploaded == 400 + 80 + 5 and first.skipped == 0  # PNGs, 2 manifests, 3 classes.json
    keys = {o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket="scones-data") for o in p.get("Contents", [])}
    assert {"cifar/classes.json", "cifar/train/train.lst", "cifar/test/test.lst"} <= keys
    head = s3.head_object(Bucket="scones-data", Key=next(k for k in keys if k.endswith(".png")))
    assert head["ContentType"] == "image/png"

    second = cifar.upload_staged(moto_session, staged_data, "scones-data", "cifar")
    assert (second.uploaded, second.skipped) == (0, first.uploaded)

    (staged_data / "classes.json").write_text('["bicycle", "motorcycle"]\n')  # one changed file
    third = cifar.upload_staged(moto_session, staged_data, "scones-data", "cifar")
    assert third.uploaded == 1


def test_stage_command_with_archive_and_bucket(moto_session, synth_archive, tmp_path):
    moto_session.client("s3").create_bucket(Bucket="staged")
    runner = CliRunner()
    args = ["stage", "--archive", str(synth_archive), "--out", str(tmp_path / "d"), "--bucket", "staged", "--prefix", "p"]
    result = runner.invoke(data, args)
    assert result.exit_code == 0, result.output
    assert "GENERATED" in result.output and "train: 400 images" in result.output
    assert "uploaded 485, unchanged 0" in result.output
    assert "uploaded 0, unchanged 485" in runner.invoke(data, args).output


def test_stage_command_offline_message(tmp_path):
    url = "http://127.0.0.1:9/cifar-100-python.tar.gz"  # discard port: refused, as when offline
    result = CliRunner().invoke(data, ["stage", "--url", url, "--cache-dir", str(tmp_path), "--out", str(tmp_path / "d")])
    assert result.exit_code == 1
    assert "DownloadFailed" in result.output and "127.0.0.1:9" in result.output and "--archive" in result.output
