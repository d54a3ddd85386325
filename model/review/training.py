"""Reviewed photos as extra training samples: `scones train --include-reviewed s3://bucket/labels/`.

Only the training set grows: a reviewed photo identical to a test image is left out (the demo
classifies the test split, so its review queue is full of them), and so are `unsure` answers
and labels the model does not know. Each photo counts once, with its last answer.
"""
from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from scones.model.config import parse_s3_uri

from .documents import UNSURE, final_label


@dataclass
class ReviewedSamples:
    images: list[np.ndarray] = field(default_factory=list)  # uint8 (size, size, 3)
    labels: list[int] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)  # reason → photos left out

    def describe(self, class_names: list[str]) -> str:
        counts = Counter(self.labels)
        added = ", ".join(f"{name} {counts[i]}" for i, name in enumerate(class_names))
        skipped = ", ".join(f"{reason} {n}" for reason, n in sorted(self.skipped.items())) or "none"
        return f"reviewed photos: {len(self.labels)} added ({added}); left out: {skipped}"


def pixels_of(body: bytes, size: int) -> np.ndarray:
    with Image.open(io.BytesIO(body)) as opened:
        image = opened.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def _documents(s3: Any, bucket: str, prefix: str):
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            if entry["Key"].endswith(".json"):
                try:
                    document = json.loads(s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read())
                except (json.JSONDecodeError, UnicodeDecodeError):
                    document = None
                yield document if isinstance(document, dict) else {}


def reviewed_samples(s3: Any, labels_uri: str, class_names: list[str], test_images: np.ndarray, size: int) -> ReviewedSamples:
    """The photos the label documents under `labels_uri` point to, with their human labels (class indices)."""
    from botocore.exceptions import ClientError

    bucket, prefix = parse_s3_uri(labels_uri, key_required=False)
    test_digests = {row.tobytes() for row in test_images}
    samples = ReviewedSamples()
    for document in _documents(s3, bucket, prefix):
        label, content = final_label(document), document.get("inputContent") or {}
        if label is None or not content.get("s3_bucket") or not content.get("s3_key"):
            samples.skipped["unreadable document"] += 1
            continue
        if label == UNSURE or label not in class_names:
            samples.skipped[UNSURE if label == UNSURE else f"unknown label {label!r}"] += 1
            continue
        try:
            body = s3.get_object(Bucket=content["s3_bucket"], Key=content["s3_key"])["Body"].read()
            pixels = pixels_of(body, size)
        except (ClientError, UnidentifiedImageError, OSError):
            samples.skipped["image unavailable"] += 1
            continue
        if pixels.transpose(2, 0, 1).tobytes() in test_digests:
            samples.skipped["same as a test image"] += 1
            continue
        samples.images.append(pixels)
        samples.labels.append(class_names.index(label))
    return samples
