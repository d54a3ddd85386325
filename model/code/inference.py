"""Serving behaviour of the model artifact: the four SageMaker PyTorch inference handlers.

Self-contained on purpose (stdlib, torch, numpy, PIL only): this file is copied into
model.tar.gz as code/inference.py and must run in AWS's official PyTorch inference
container with nothing but itself. Training imports the network definition from here,
so the weights and the serving code can never disagree.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import nn

ARCHITECTURE = "convnet_cifar"  # what `scones train` builds by default
RESNET_ARCHITECTURE = "resnet18_cifar"  # for --pretrained (ImageNet weights) and older artifacts
IMAGE_SIZE = 32
# CIFAR-100 training-set statistics; model.json records what the weights were trained with.
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
IMAGE_CONTENT_TYPES = frozenset({"image/png", "image/jpeg", "application/x-image"})
JSON_CONTENT_TYPE = "application/json"

# input_fn has no model argument in the toolkit's signature: model_fn sets the
# normalisation the loaded weights were trained with.
_normalisation = {"mean": CIFAR100_MEAN, "std": CIFAR100_STD}


class UnsupportedContentType(ValueError):
    """The request's Content-Type is not an image type this model reads."""


class InvalidImage(ValueError):
    """The request body could not be decoded as an image."""


class UnsupportedAccept(ValueError):
    """The caller asked for a response type other than JSON."""


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18Cifar(nn.Module):
    """ResNet-18 for 32x32 inputs: a 3x3 stem and no max-pool, stage widths w, 2w, 4w, 8w.

    Parameter names match torchvision's resnet18 so ImageNet weights load by name (width 64).
    """

    def __init__(self, num_classes: int, width: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        channels = [width, width * 2, width * 4, width * 8]
        in_channels = width
        for index, (out_channels, stride) in enumerate(zip(channels, (1, 2, 2, 2)), start=1):
            blocks = nn.Sequential(
                BasicBlock(in_channels, out_channels, stride),
                BasicBlock(out_channels, out_channels, 1),
            )
            setattr(self, f"layer{index}", blocks)
            in_channels = out_channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class ConvBlock(nn.Module):
    """conv 3x3 -> max-pool 2 -> BN -> GELU -> conv 3x3 -> BN -> GELU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.gelu(self.bn1(nn.functional.max_pool2d(self.conv1(x), 2)))
        return nn.functional.gelu(self.bn2(self.conv2(x)))


class ConvNetCifar(nn.Module):
    """A small VGG-like net after Keller Jordan's airbench (github.com/KellerJordan/cifar10-airbench).

    A 2x2 stem (training initialises it to whiten image patches and freezes its weights), three
    conv blocks of widths w, 2w, 2w that each halve the resolution, a global max-pool and a
    linear head scaled down by 1/9. On the seeds' 1000 photos it beats ResNet-18 at a fraction
    of the compute (README, "Training on real photos").
    """

    STEM_DIRECTIONS = 12  # whitened 2x2x3 patch directions; the stem outputs each with both signs
    HEAD_SCALE = 1 / 9

    def __init__(self, num_classes: int, width: int = 32) -> None:
        super().__init__()
        stem_channels = 2 * self.STEM_DIRECTIONS
        self.stem = nn.Conv2d(3, stem_channels, 2, bias=True)
        self.blocks = nn.Sequential(
            ConvBlock(stem_channels, width), ConvBlock(width, 2 * width), ConvBlock(2 * width, 2 * width),
        )
        self.fc = nn.Linear(2 * width, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(nn.functional.gelu(self.stem(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_max_pool2d(x, 1), 1)) * self.HEAD_SCALE


class Ensemble(nn.Module):
    """Several independently trained networks; the logits are their mean."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x).float() for member in self.members]).mean(0)


def build_network(architecture: str, num_classes: int, width: int, members: int = 1) -> nn.Module:
    """The network model.json describes; several members make an Ensemble."""
    networks = {ARCHITECTURE: ConvNetCifar, RESNET_ARCHITECTURE: ResNet18Cifar}
    if architecture not in networks:
        raise ValueError(f"model.json architecture {architecture!r}, expected one of {', '.join(networks)}")
    if members < 1:
        raise ValueError(f"model.json members {members}: must be at least 1")
    nets = [networks[architecture](num_classes, width) for _ in range(members)]
    return nets[0] if members == 1 else Ensemble(nets)


class LoadedModel:
    """What model_fn returns: the network in eval mode plus what serving needs to know."""

    def __init__(self, net: nn.Module, class_names: list[str], device: torch.device, meta: dict) -> None:
        self.net = net
        self.class_names = class_names
        self.device = device
        self.meta = meta
        # Fitted on the validation split at training time; 1.0 (no change) for older artifacts.
        self.temperature = float(meta.get("temperature", 1.0))
        self.flip_average = bool(meta.get("flip_average", False))


def pick_device(requested: str = "auto") -> torch.device:
    """`auto` means CUDA when present; SCONES_DEVICE selects it for model_fn."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no CUDA GPU is available")
    return torch.device(requested)


def preferred_memory_format(device: torch.device) -> torch.memory_format:
    """channels_last on CPU: oneDNN's convolutions and max-pooling take NHWC without reordering, so
    both networks run 1.5-2x faster at batch sizes 2 to 64 (README, "Benchmarks"), with the same
    answers to ~1e-11. CUDA keeps the default layout, the one its figures were measured with."""
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


def model_fn(model_dir: str) -> LoadedModel:
    """Builds the network from model.json and loads model.pth with the safe (weights-only) loader."""
    root = Path(model_dir)
    meta = json.loads((root / "model.json").read_text())
    net = build_network(str(meta.get("architecture")), len(meta["class_names"]), int(meta["width"]), int(meta.get("members", 1)))
    device = pick_device(os.environ.get("SCONES_DEVICE", "auto"))
    state = torch.load(root / "model.pth", map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    net.to(device, memory_format=preferred_memory_format(device)).eval()
    _normalisation["mean"] = tuple(meta.get("mean", CIFAR100_MEAN))
    _normalisation["std"] = tuple(meta.get("std", CIFAR100_STD))
    return LoadedModel(net, list(meta["class_names"]), device, meta)


def _media_type(header: str | None) -> str:
    return (header or "").split(";")[0].strip().lower()


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """Any PIL image -> (3, 32, 32) float tensor, normalised: the same path training uses."""
    if image.mode != "RGB":
        image = image.convert("RGBA").convert("RGB") if image.mode == "P" else image.convert("RGB")
    if image.size != (IMAGE_SIZE, IMAGE_SIZE):
        image = image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
    # normalise()'s arithmetic in numpy on the HWC pixels: a tenth of the CPU of a dozen tiny torch ops per image.
    mean = np.asarray(_normalisation["mean"], dtype=np.float32)
    std = np.asarray(_normalisation["std"], dtype=np.float32)
    pixels = (np.asarray(image, dtype=np.float32) / np.float32(255.0) - mean) / std
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))


def normalise(batch: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float32 normalised with the loaded model's mean and std."""
    mean = torch.tensor(_normalisation["mean"], dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(_normalisation["std"], dtype=torch.float32).view(1, 3, 1, 1)
    return (batch.to(torch.float32) / 255.0 - mean.to(batch.device)) / std.to(batch.device)


def input_fn(request_body: bytes, request_content_type: str) -> torch.Tensor:
    """Decodes one PNG/JPEG image of any size and mode into a (1, 3, 32, 32) batch."""
    content_type = _media_type(request_content_type)
    if content_type not in IMAGE_CONTENT_TYPES:
        raise UnsupportedContentType(
            f"content type {request_content_type!r} is not supported; "
            f"send one of {', '.join(sorted(IMAGE_CONTENT_TYPES))}"
        )
    try:
        with Image.open(io.BytesIO(request_body)) as image:
            image.load()
            return image_to_tensor(image).unsqueeze(0)
    except UnidentifiedImageError as error:  # its message is only the BytesIO repr
        raise InvalidImage(f"the request body ({len(request_body)} bytes) is not a PNG, JPEG or other image") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise InvalidImage(f"could not decode the request body as an image ({len(request_body)} bytes): {error}") from error


def model_logits(net: nn.Module, batch: torch.Tensor, flip_average: bool) -> torch.Tensor:
    """The network's logits, averaged with those of the mirrored image when the model was trained so.

    Training evaluates with this same function, so served answers match the reported figures.
    """
    if not flip_average:
        return net(batch).float()
    both = net(torch.cat((batch, batch.flip(-1)))).float()  # one pass over both: a third less time at batch size 1
    return (both[:len(batch)] + both[len(batch):]) / 2


def predict_fn(input_data: torch.Tensor, model: LoadedModel) -> torch.Tensor:
    """(N, 3, 32, 32) -> (N, num_classes) calibrated probabilities (softmax of logits / T), float32 on CPU."""
    with torch.inference_mode():
        logits = model_logits(model.net, input_data.to(model.device, dtype=torch.float32), model.flip_average)
        return torch.softmax(logits / model.temperature, dim=1).cpu()


def output_fn(prediction: torch.Tensor, accept: str) -> tuple[bytes, str]:
    """Probabilities in class order as a JSON list, like the built-in image classifier answers."""
    if _media_type(accept) not in ("", "*/*", JSON_CONTENT_TYPE):
        raise UnsupportedAccept(f"accept type {accept!r} is not supported; use {JSON_CONTENT_TYPE}")
    probabilities = prediction.reshape(-1).tolist()
    return json.dumps(probabilities).encode(), JSON_CONTENT_TYPE
