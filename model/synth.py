"""A generated stand-in for CIFAR-100, written in the real archive format.

These machines cannot download CIFAR-100, so tests and the offline demo use images drawn
here: each class is a shape family (wheels on a frame, a heavy body on discs, stripes, ...)
with random position, scale, colour and noise, learnable but never constant. The archive
is byte-for-byte the real layout (tar.gz of cifar-100-python/{train,test,meta} pickles), so
staging and training run the code paths real data takes.
"""
from __future__ import annotations

import colorsys
import io
import pickle
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from .cifar import ARCHIVE_NAME, GENERATED_MARKER

CIFAR100_FINE_LABEL_NAMES = ["apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm"]
CIFAR100_COARSE_LABEL_NAMES = ["aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables", "household_electrical_devices", "household_furniture", "insects", "large_carnivores", "large_man-made_outdoor_things", "large_natural_outdoor_scenes", "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates", "people", "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2"]
# coarse label of each fine label, in fine-label order (the dataset's own mapping)
FINE_TO_COARSE = (
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
)
ARCHIVE_FOLDER = "cifar-100-python"
DRAW_SCALE = 4  # draw at 128x128 and downsample, for anti-aliased edges like a photo's
SIZE = 32 * DRAW_SCALE

Shape = Callable[[ImageDraw.ImageDraw, float, float, float, tuple[int, int, int]], None]


class UnknownClassName(ValueError):
    """A requested class is not one of CIFAR-100's fine labels."""


def _wheels_on_frame(draw: ImageDraw.ImageDraw, cx: float, cy: float, s: float, colour: tuple) -> None:
    """Two thin rings joined by a thin frame: bicycle-like."""
    r, width = 0.28 * s, max(2, int(0.06 * s))
    for dx in (-0.5 * s, 0.5 * s):
        draw.ellipse([cx + dx - r, cy + 0.2 * s - r, cx + dx + r, cy + 0.2 * s + r], outline=colour, width=width)
    draw.line([cx - 0.5 * s, cy + 0.2 * s, cx, cy - 0.25 * s, cx + 0.5 * s, cy + 0.2 * s], fill=colour, width=width)


def _heavy_body_on_discs(draw: ImageDraw.ImageDraw, cx: float, cy: float, s: float, colour: tuple) -> None:
    """A solid body over two filled discs: motorcycle-like."""
    r = 0.26 * s
    for dx in (-0.5 * s, 0.5 * s):
        draw.ellipse([cx + dx - r, cy + 0.25 * s - r, cx + dx + r, cy + 0.25 * s + r], fill=colour)
    draw.rounded_rectangle([cx - 0.6 * s, cy - 0.35 * s, cx + 0.45 * s, cy + 0.1 * s], radius=0.1 * s, fill=colour)


def _stripes(draw: ImageDraw.ImageDraw, cx: float, cy: float, s: float, colour: tuple) -> None:
    for offset in np.linspace(-0.6 * s, 0.6 * s, 4):
        draw.line([cx + offset, cy - 0.6 * s, cx + offset, cy + 0.6 * s], fill=colour, width=max(2, int(0.12 * s)))


def _triangle(draw: ImageDraw.ImageDraw, cx: float, cy: float, s: float, colour: tuple) -> None:
    draw.polygon([(cx, cy - 0.6 * s), (cx - 0.6 * s, cy + 0.5 * s), (cx + 0.6 * s, cy + 0.5 * s)], fill=colour)


def _cross(draw: ImageDraw.ImageDraw, cx: float, cy: float, s: float, colour: tuple) -> None:
    w = max(2, int(0.18 * s))
    draw.line([cx - 0.6 * s, cy, cx + 0.6 * s, cy], fill=colour, width=w)
    draw.line([cx, cy - 0.6 * s, cx, cy + 0.6 * s], fill=colour, width=w)


def _checkers(draw: ImageDraw.ImageDraw, cx: float, cy: float, s: float, colour: tuple) -> None:
    cell = 0.3 * s
    for i in range(4):
        for j in range(4):
            if (i + j) % 2 == 0:
                x, y = cx - 2 * cell + i * cell, cy - 2 * cell + j * cell
                draw.rectangle([x, y, x + cell, y + cell], fill=colour)


SHAPES: tuple[Shape, ...] = (_wheels_on_frame, _heavy_body_on_discs, _stripes, _triangle, _cross, _checkers)


def draw_image(family: int, rng: np.random.Generator) -> np.ndarray:
    """One 32x32 RGB image (uint8 HxWx3) of a class's shape family, randomly placed and coloured."""
    shape = SHAPES[family % len(SHAPES)]
    base_hue = (family * 0.38) % 1.0
    top, bottom = rng.uniform(0, 255, size=(2, 3))
    gradient = np.linspace(0, 1, SIZE)[:, None, None]
    background = (top * (1 - gradient) + bottom * gradient) * np.ones((SIZE, SIZE, 3))
    image = Image.fromarray(background.astype(np.uint8))
    # Colour hints at the class but is unreliable on purpose: a quarter of images get any hue.
    hue = rng.uniform(0, 1) if rng.uniform() < 0.25 else (base_hue + rng.normal(0, 0.05)) % 1.0
    luminance = background.mean() / 255
    value = rng.uniform(0.05, 0.35) if luminance > 0.5 else rng.uniform(0.7, 1.0)
    colour = tuple(int(c * 255) for c in colorsys.hsv_to_rgb(hue, rng.uniform(0.5, 1.0), value))
    scale = rng.uniform(0.55, 0.85) * SIZE / 2
    cx = rng.uniform(0.4, 0.6) * SIZE
    cy = rng.uniform(0.4, 0.6) * SIZE
    shape(ImageDraw.Draw(image), cx, cy, scale, colour)
    small = np.asarray(image.resize((32, 32), Image.Resampling.BOX), dtype=np.float32)
    noisy = small + rng.normal(0, 6, size=small.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def class_indices(classes: Sequence[str]) -> list[int]:
    """Fine-label indices of class names, with a named error for a name CIFAR-100 lacks."""
    unknown = [name for name in classes if name not in CIFAR100_FINE_LABEL_NAMES]
    if unknown:
        raise UnknownClassName(f"not CIFAR-100 fine labels: {', '.join(unknown)}")
    return [CIFAR100_FINE_LABEL_NAMES.index(name) for name in classes]


def _split(classes: Sequence[str], per_class: int, rng: np.random.Generator, start: int, desc: str) -> dict:
    rows, fine, names = [], [], []
    indices = class_indices(classes)
    with tqdm(total=per_class * len(classes), desc=desc, unit="img", leave=False) as bar:
        for family, fine_label in enumerate(indices):
            for _ in range(per_class):
                pixels = draw_image(family, rng)
                rows.append(pixels.transpose(2, 0, 1).reshape(-1))  # R, G, B planes
                fine.append(fine_label)
                names.append(f"{CIFAR100_FINE_LABEL_NAMES[fine_label]}_s_{start + len(names):06d}.png".encode())
                bar.update()
    order = rng.permutation(len(rows))
    return {
        b"filenames": [names[i] for i in order],
        b"batch_label": f"generated {desc} batch".encode(),
        b"fine_labels": [fine[i] for i in order],
        b"coarse_labels": [FINE_TO_COARSE[fine[i]] for i in order],
        b"data": np.stack(rows)[order].astype(np.uint8),
    }


def _add_pickle(tar: tarfile.TarFile, name: str, payload: dict) -> None:
    blob = pickle.dumps(payload, protocol=2)
    info = tarfile.TarInfo(f"{ARCHIVE_FOLDER}/{name}")
    info.size = len(blob)
    tar.addfile(info, io.BytesIO(blob))


def write_synth_archive(
    out_dir: Path,
    classes: Sequence[str] = ("bicycle", "motorcycle"),
    train_per_class: int = 200,
    test_per_class: int = 40,
    seed: int = 0,
) -> Path:
    """Writes out_dir/cifar-100-python.tar.gz holding GENERATED images of the given classes."""
    rng = np.random.default_rng(seed)
    train = _split(classes, train_per_class, rng, start=0, desc="generating train")
    test = _split(classes, test_per_class, rng, start=len(train[b"filenames"]), desc="generating test")
    meta = {
        b"fine_label_names": [name.encode() for name in CIFAR100_FINE_LABEL_NAMES],
        b"coarse_label_names": [name.encode() for name in CIFAR100_COARSE_LABEL_NAMES],
        GENERATED_MARKER: b"scones data synth: generated shapes, not CIFAR-100 photographs",
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ARCHIVE_NAME
    with tarfile.open(path, "w:gz") as tar:
        _add_pickle(tar, "meta", meta)
        _add_pickle(tar, "train", train)
        _add_pickle(tar, "test", test)
    return path
