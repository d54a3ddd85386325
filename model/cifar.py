"""CIFAR-100: download with a checksum, safe pickle parsing, class selection, staging, S3 upload.

Staged layout (also the SageMaker channel layout): DIR/classes.json, DIR/train/ and DIR/test/,
each with RGB PNGs, a `.lst` manifest (`index<TAB>label<TAB>file name`, labels from 0) and a
copy of classes.json. The seeds' layout is read too: DIR/train/, DIR/test/, DIR/train.lst,
DIR/test.lst, no classes.json (class names then come from the caller).
"""
from __future__ import annotations

import difflib
import hashlib
import io
import json
import pickle
import tarfile
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
# Same value as torchvision.datasets.CIFAR100.tgz_md5.
CIFAR100_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
ARCHIVE_NAME = "cifar-100-python.tar.gz"
SPLITS = ("train", "test")
GENERATED_MARKER = b"generated_by"  # meta key in `scones data synth` archives
DOWNLOAD_TIMEOUT_S = 30
CHUNK = 1 << 20


class CifarError(Exception):
    """Base of the named errors a person staging data can act on."""


class DownloadFailed(CifarError):
    """The archive could not be fetched (offline, proxy, HTTP error)."""


class ChecksumMismatch(CifarError):
    """The archive's MD5 is not the expected one: corrupt or not the file we asked for."""


class InvalidArchive(CifarError):
    """The file is not a CIFAR-100 python archive (missing members, unexpected pickle content)."""


class UnknownClass(CifarError):
    """A requested class is not among the archive's fine labels."""


@dataclass
class CifarSplit:
    """One split's rows: uint8 (N, 3072) R,G,B planes, fine labels and CIFAR file names."""

    data: np.ndarray
    fine_labels: list[int]
    filenames: list[str]


@dataclass
class CifarArchive:
    fine_label_names: list[str]
    splits: dict[str, CifarSplit]
    generated_note: str | None = None  # set for `scones data synth` archives


@dataclass
class StageSummary:
    out_dir: Path
    classes: list[str]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> class -> images
    generated_note: str | None = None


@dataclass
class UploadSummary:
    uploaded: int
    skipped: int
    uri: str


# --- download and checksum -------------------------------------------------------------


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_md5(path: Path, expected: str) -> None:
    actual = file_md5(path)
    if actual != expected.lower():
        raise ChecksumMismatch(f"{path}: MD5 {actual}, expected {expected}; the file is corrupt or not CIFAR-100")


def download_archive(cache_dir: Path, url: str = CIFAR100_URL, md5: str = CIFAR100_MD5) -> Path:
    """Returns the cached archive, downloading it (with a progress bar) and checking its MD5 first."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / ARCHIVE_NAME
    if path.is_file():
        verify_md5(path, md5)
        return path
    partial = path.with_name(path.name + ".partial")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {ARCHIVE_NAME}") as bar:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        partial.unlink(missing_ok=True)
        raise DownloadFailed(
            f"could not download {url} ({getattr(error, 'reason', error)}). "
            f"Offline? Fetch the file elsewhere and pass it with --archive PATH."
        ) from error
    try:
        verify_md5(partial, md5)
    except ChecksumMismatch:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)
    return path


# --- parsing ---------------------------------------------------------------------------


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles only what CIFAR pickles contain (dicts, lists, bytes, numpy arrays): no arbitrary code."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),  # how Python 3 writes bytes at pickle protocol 2
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise InvalidArchive(f"refusing to unpickle {module}.{name}: not part of the CIFAR format")
        module = module.replace("numpy.core.", "numpy._core.")  # numpy 2 name; avoids the shim warning
        return super().find_class(module, name)


def parse_pickle(blob: bytes) -> dict:
    """CIFAR python pickles were written by Python 2: keys and strings come back as bytes."""
    return _CifarUnpickler(io.BytesIO(blob), encoding="bytes").load()


def _decode(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def read_archive(path: Path) -> CifarArchive:
    """Parses meta, train and test straight from the tar.gz (nothing extracted to disk)."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            blobs = {}
            for member in tar.getmembers():
                name = member.name.rsplit("/", 1)[-1]
                if member.isfile() and name in ("meta", *SPLITS):
                    blobs[name] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise InvalidArchive(f"{path} is not a readable tar.gz: {error}") from error
    missing = {"meta", *SPLITS} - blobs.keys()
    if missing:
        raise InvalidArchive(f"{path} lacks {', '.join(sorted(missing))}: not a CIFAR-100 python archive")
    meta = parse_pickle(blobs["meta"])
    splits = {}
    for split in SPLITS:
        raw = parse_pickle(blobs[split])
        try:
            data = np.asarray(raw[b"data"], dtype=np.uint8)
            splits[split] = CifarSplit(data, list(raw[b"fine_labels"]), [_decode(n) for n in raw[b"filenames"]])
        except KeyError as error:
            raise InvalidArchive(f"{path}: the {split} pickle lacks {error}") from error
        if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(splits[split].fine_labels):
            raise InvalidArchive(f"{path}: the {split} data has shape {data.shape}, expected (N, 3072)")
    note = meta.get(GENERATED_MARKER)
    return CifarArchive([_decode(n) for n in meta[b"fine_label_names"]], splits, _decode(note) if note else None)


def row_to_image(row: np.ndarray) -> Image.Image:
    """3072 bytes of R, G, B planes -> a 32x32 RGB image."""
    return Image.fromarray(row.reshape(3, 32, 32).transpose(1, 2, 0), mode="RGB")


def resolve_classes(archive: CifarArchive, classes: Sequence[str]) -> list[int]:
    """Fine-label indices of the requested names, in the requested order (that order = label ids)."""
    indices = []
    for name in classes:
        if name not in archive.fine_label_names:
            close = difflib.get_close_matches(name, archive.fine_label_names, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UnknownClass(f"{name!r} is not a CIFAR-100 fine label{hint}")
        indices.append(archive.fine_label_names.index(name))
    if len(set(indices)) != len(indices):
        raise UnknownClass(f"classes repeat: {', '.join(classes)}")
    return indices


def selected_rows(split: CifarSplit, fine_indices: Sequence[int]) -> Iterator[tuple[int, int, str]]:
    """(row, label from 0, file name) for the rows of the chosen classes, in archive order."""
    label_of = {fine: label for label, fine in enumerate(fine_indices)}
    for row, fine in enumerate(split.fine_labels):
        if fine in label_of:
            yield row, label_of[fine], split.filenames[row]


# --- staging ---------------------------------------------------------------------------


def stage_archive(archive_path: Path, out_dir: Path, classes: Sequence[str]) -> StageSummary:
    """Writes the chosen classes as RGB PNGs with .lst manifests and classes.json."""
    archive = read_archive(archive_path)
    fine_indices = resolve_classes(archive, classes)
    classes_json = json.dumps(list(classes))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "classes.json").write_text(classes_json)
    summary = StageSummary(out_dir, list(classes), generated_note=archive.generated_note)
    for split in SPLITS:
        split_dir = out_dir / split
        split_dir.mkdir(exist_ok=True)
        (split_dir / "classes.json").write_text(classes_json)
        rows = list(selected_rows(archive.splits[split], fine_indices))
        lines = []
        counts = dict.fromkeys(classes, 0)
        for index, (row, label, filename) in enumerate(tqdm(rows, desc=f"writing {split} PNGs", unit="img")):
            row_to_image(archive.splits[split].data[row]).save(split_dir / filename, format="PNG")
            lines.append(f"{index}\t{label}\t{filename}\n")
            counts[classes[label]] += 1
        (split_dir / f"{split}.lst").write_text("".join(lines))
        summary.counts[split] = counts
    return summary


class ManifestMissing(CifarError):
    """A split folder has no .lst manifest where the staged or the seeds' layout puts it."""


def find_manifest(split_dir: Path, manifest_dir: Path | None = None) -> Path:
    """The split's .lst: inside it (our staged layout), or beside it as the seeds uploaded it
    (`DIR/train.lst` next to `DIR/train/`), or in `manifest_dir` (a SageMaker `train_lst` channel)."""
    name = f"{split_dir.name}.lst"
    for candidate in (split_dir / name, split_dir.parent / name, *([manifest_dir / name] if manifest_dir else [])):
        if candidate.is_file():
            return candidate
    for folder in (split_dir, manifest_dir):
        manifests = sorted(folder.glob("*.lst")) if folder and folder.is_dir() else []
        if len(manifests) == 1:
            return manifests[0]
    raise ManifestMissing(
        f"no {name} in {split_dir} or beside it{f' or in {manifest_dir}' if manifest_dir else ''}; "
        "stage data with `scones data stage` (or give the seeds' layout: train/, test/, train.lst, test.lst)"
    )


def read_manifest(split_dir: Path, manifest_dir: Path | None = None) -> list[tuple[int, int, str]]:
    """The split's .lst rows: (index, label, path relative to split_dir); labels come only from here."""
    manifest = find_manifest(split_dir, manifest_dir)
    rows = []
    for number, line in enumerate(manifest.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3 or not fields[0].strip().isdigit() or not fields[1].strip().isdigit():
            raise InvalidArchive(f"{manifest} line {number}: expected index<TAB>label<TAB>file, got {line!r}")
        rows.append((int(fields[0]), int(fields[1]), fields[2].strip()))
    return rows


def find_class_names(split_dir: Path, default: Sequence[str]) -> list[str]:
    """classes.json in the split or its parent (staged layout), else `default` (the seeds wrote none)."""
    for candidate in (split_dir / "classes.json", split_dir.parent / "classes.json"):
        if candidate.is_file():
            return list(json.loads(candidate.read_text()))
    return list(default)


def stage_from_dir(source: Path, out_dir: Path, classes: Sequence[str]) -> StageSummary:
    """Stages a folder in the seeds' layout (train/, test/, train.lst, test.lst; RGBA PNGs) or ours:
    RGB PNGs, the manifests inside each split, classes.json. Labels come from the manifests."""
    names = find_class_names(source / SPLITS[0], classes)
    classes_json = json.dumps(names)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "classes.json").write_text(classes_json)
    summary = StageSummary(out_dir, names)
    for split in SPLITS:
        rows = read_manifest(source / split)
        split_dir = out_dir / split
        split_dir.mkdir(exist_ok=True)
        (split_dir / "classes.json").write_text(classes_json)
        counts = dict.fromkeys(names, 0)
        for _, label, relative in tqdm(rows, desc=f"writing {split} PNGs", unit="img"):
            if not 0 <= label < len(names):
                raise UnknownClass(f"{source / split}: label {label} of {relative} is not one of {len(names)} classes {names}")
            with Image.open(source / split / relative) as image:
                target = split_dir / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                image.convert("RGB").save(target, format="PNG")
            counts[names[label]] += 1
        (split_dir / f"{split}.lst").write_text("".join(f"{i}\t{label}\t{path}\n" for i, label, path in rows))
        summary.counts[split] = counts
    return summary


# --- S3 upload -------------------------------------------------------------------------


def _local_etag(path: Path) -> str:
    return f'"{file_md5(path)}"'  # single-part uploads: the ETag is the quoted MD5


def upload_staged(session, out_dir: Path, bucket: str, prefix: str = "") -> UploadSummary:
    """Uploads the staged folder under s3://bucket/prefix/, skipping objects already there unchanged."""
    s3 = session.client("s3")
    prefix = prefix.strip("/")
    key_prefix = f"{prefix}/" if prefix else ""
    existing = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key_prefix):
        for item in page.get("Contents", []):
            existing[item["Key"]] = (item["Size"], item["ETag"])
    files = sorted(p for p in out_dir.rglob("*") if p.is_file() and p.suffix in (".png", ".lst", ".json"))
    uploaded = skipped = 0
    for path in tqdm(files, desc=f"uploading to s3://{bucket}/{key_prefix}", unit="file"):
        key = key_prefix + path.relative_to(out_dir).as_posix()
        if existing.get(key) == (path.stat().st_size, _local_etag(path)):
            skipped += 1
            continue
        content_type = {".png": "image/png", ".json": "application/json"}.get(path.suffix, "text/plain")
        s3.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": content_type})
        uploaded += 1
    return UploadSummary(uploaded, skipped, f"s3://{bucket}/{key_prefix}")
