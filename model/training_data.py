"""What training reads: a split folder into tensors, the validation split carved from train, augmentation.

Two layouts are read as they are: ours from `scones data stage` (manifest and classes.json inside
each split) and the seeds' as they uploaded it (`train/`, `test/`, `train.lst`, `test.lst`, no
classes.json). Labels come from the manifests only: seven of the seeds' `bike_s_*` photos are
motorcycles.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import nn

from .cifar import CifarError, find_class_names, read_manifest
from .code.inference import IMAGE_SIZE

PAD = 4  # random-crop padding, as in the usual CIFAR recipe; mirrored rather than black borders
CUTOUT_FILL = 128  # mid-grey, close to the data mean: a patch of "nothing" after normalisation


class TrainingError(Exception):
    """Base of the named training errors."""


class TrainingDataMissing(TrainingError):
    """The train or test channel is not a data folder in a layout we read."""


def load_split(split_dir: Path, manifest_dir: Path | None, default_classes: Sequence[str]
               ) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """A split folder -> uint8 images (N, 3, 32, 32), labels (N,), class names."""
    if not split_dir.is_dir():
        raise TrainingDataMissing(f"{split_dir} is not a folder; run `scones data stage` or `scones data synth`, "
                                  "or pass a folder with train/, test/, train.lst and test.lst")
    try:
        rows = read_manifest(split_dir, manifest_dir)
    except CifarError as error:
        raise TrainingDataMissing(str(error)) from error
    class_names = find_class_names(split_dir, default_classes)
    images, labels = [], []
    for _, label, relative in rows:
        if not 0 <= label < len(class_names):
            raise TrainingDataMissing(f"{split_dir}: {relative} has label {label}, but the classes are {class_names} "
                                      "(pass --classes)")
        try:
            with Image.open(split_dir / relative) as image:
                image = image.convert("RGB")
                if image.size != (IMAGE_SIZE, IMAGE_SIZE):
                    image = image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
                images.append(np.asarray(image, dtype=np.uint8))
        except (FileNotFoundError, UnidentifiedImageError) as error:
            raise TrainingDataMissing(f"{split_dir}: manifest names {relative}, which is not a readable image") from error
        labels.append(label)
    if not images:
        raise TrainingDataMissing(f"{split_dir} has no images in its manifest")
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return pixels, torch.tensor(labels, dtype=torch.long), class_names


def stratified_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, validation indices): `fraction` of every class, at least one image, chosen by `seed`."""
    generator = torch.Generator().manual_seed(seed)
    validation = []
    for label in labels.unique().tolist():
        members = (labels == label).nonzero().flatten()
        if len(members) < 2:
            raise TrainingDataMissing(f"class {label} has {len(members)} training image(s): too few to hold one out")
        members = members[torch.randperm(len(members), generator=generator)]
        validation.append(members[:max(1, round(len(members) * fraction))])
    held_out = torch.zeros(len(labels), dtype=torch.bool)
    held_out[torch.cat(validation)] = True
    return (~held_out).nonzero().flatten(), held_out.nonzero().flatten()


def augment(batch: torch.Tensor, generator: torch.Generator, cutout: int = 0) -> torch.Tensor:
    """Random crop of the mirror-padded image, random horizontal flip and (cutout > 0) a grey square, on uint8."""
    n = batch.shape[0]
    padded = nn.functional.pad(batch, (PAD, PAD, PAD, PAD), mode="reflect")
    offsets = torch.randint(0, 2 * PAD + 1, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    centres = torch.randint(0, IMAGE_SIZE, (n, 2), generator=generator)
    out = torch.empty_like(batch)
    for i in range(n):
        y, x = offsets[i].tolist()
        crop = padded[i, :, y:y + IMAGE_SIZE, x:x + IMAGE_SIZE]
        out[i] = crop.flip(-1) if flips[i] else crop
        if cutout:
            cy, cx = centres[i].tolist()
            out[i, :, max(0, cy - cutout // 2):cy + (cutout + 1) // 2, max(0, cx - cutout // 2):cx + (cutout + 1) // 2] = CUTOUT_FILL
    return out


def add_reviewed(train_x: torch.Tensor, train_y: torch.Tensor, labels_uri: str, class_names: list[str],
                 test_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The training split plus the reviewed photos under `labels_uri` (boto3, AWS_ENDPOINT_URL honoured)."""
    import boto3

    from .review.training import reviewed_samples

    samples = reviewed_samples(boto3.client("s3"), labels_uri, class_names, test_x.numpy(), IMAGE_SIZE)
    print(f"{samples.describe(class_names)} from {labels_uri}", flush=True)
    if not samples.labels:
        return train_x, train_y
    extra_x = torch.from_numpy(np.stack(samples.images)).permute(0, 3, 1, 2).contiguous()
    return torch.cat([train_x, extra_x]), torch.cat([train_y, torch.tensor(samples.labels, dtype=torch.long)])
