"""Trains the classifier: one script for a laptop CPU, a local GPU and a SageMaker training job.

SageMaker script mode runs `python train.py --epochs 30 ...` with SM_MODEL_DIR,
SM_CHANNEL_TRAIN, SM_CHANNEL_TEST and SM_NUM_GPUS set; locally the same flags work with
`--data DIR --out DIR`. Per-epoch metrics are printed as `key=value` lines so a SageMaker
metric definition like `test_acc=([0-9.]+)` can read them.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import random
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from scones.model.config import DEFAULT_THRESHOLD, load_settings

from .artifact import pack_artifact, write_code_dir
from .cifar import read_manifest
from .code import inference
from .code.inference import ARCHITECTURE, CIFAR100_MEAN, CIFAR100_STD, IMAGE_SIZE, ResNet18Cifar

PAD = 4  # random-crop padding, as in the usual CIFAR recipe


class TrainingError(Exception):
    """Base of the named training errors."""


class TrainingDataMissing(TrainingError):
    """The train or test channel is not a staged data folder."""


class PretrainedWeightsUnavailable(TrainingError):
    """--pretrained was asked for but the ImageNet weights cannot be had here."""


@dataclass
class EpochMetrics:
    epoch: int
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    seconds: float

    def line(self) -> str:
        return (
            f"epoch={self.epoch} train_loss={self.train_loss:.4f} train_acc={self.train_acc:.4f} "
            f"test_loss={self.test_loss:.4f} test_acc={self.test_acc:.4f} epoch_seconds={self.seconds:.2f}"
        )


@dataclass
class TrainResult:
    best: EpochMetrics
    history: list[EpochMetrics]
    confusion_matrix: list[list[int]]
    class_names: list[str]
    model_dir: Path
    artifact: Path | None
    seconds: float


def in_sagemaker() -> bool:
    return "SM_MODEL_DIR" in os.environ or "SM_TRAINING_ENV" in os.environ


def build_parser() -> argparse.ArgumentParser:
    env = os.environ
    home = load_settings().home
    parser = argparse.ArgumentParser(
        prog="scones train",
        description="Train the ResNet-18 (32x32) classifier on a staged data folder and write model.tar.gz "
        "(SageMaker PyTorch layout). Runs unchanged as a SageMaker script-mode entry point.",
    )
    parser.add_argument("--data", type=Path, default=home / "data" / "synth",
                        help="staged folder with train/ and test/ (from `scones data stage|synth`); "
                        "SM_CHANNEL_TRAIN / SM_CHANNEL_TEST override it (default: %(default)s)")
    parser.add_argument("--train-dir", type=Path, default=env.get("SM_CHANNEL_TRAIN"), help=argparse.SUPPRESS)
    parser.add_argument("--test-dir", type=Path, default=env.get("SM_CHANNEL_TEST"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path(env.get("SM_MODEL_DIR", home / "model")),
                        help="where model.tar.gz and metrics.json go; under SageMaker SM_MODEL_DIR, "
                        "written unpacked for SageMaker to pack (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=12, help="passes over the training set (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=0.05, help="peak learning rate of the one-cycle schedule (default: %(default)s)")
    parser.add_argument("--weight-decay", type=float, default=5e-4, help="SGD weight decay (default: %(default)s)")
    parser.add_argument("--width", type=int, default=16,
                        help="channels of the first stage (64 = the original ResNet-18; default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights, shuffling and augmentation (default: %(default)s)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto = CUDA when present (mixed precision on CUDA) (default: %(default)s)")
    parser.add_argument("--pretrained", action="store_true",
                        help="start from torchvision's ImageNet ResNet-18 weights (needs --width 64 and a download)")
    parser.add_argument("--num-workers", type=int, default=0, help="data-loading worker processes (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice, one per core)")
    parser.add_argument("--no-augment", action="store_true", help="turn off random crop and flip")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help="confidence threshold recorded in baseline.json (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--include-reviewed", metavar="S3_URI", default=None,
                        help="also train on the photos people labelled with `scones review` (s3://bucket/labels/); "
                        "the test split is never touched, photos identical to a test image are left out")
    return parser


# --- data ------------------------------------------------------------------------------


def load_split(split_dir: Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """A staged split -> uint8 images (N, 3, 32, 32), labels (N,), class names."""
    classes_file = split_dir / "classes.json"
    if not split_dir.is_dir() or not classes_file.is_file():
        raise TrainingDataMissing(f"{split_dir} is not a staged split (no classes.json); run `scones data stage` or `scones data synth`")
    class_names = json.loads(classes_file.read_text())
    images, labels = [], []
    for _, label, relative in read_manifest(split_dir):
        with Image.open(split_dir / relative) as image:
            image = image.convert("RGB")
            if image.size != (IMAGE_SIZE, IMAGE_SIZE):
                image = image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
            images.append(np.asarray(image, dtype=np.uint8))
        labels.append(label)
    if not images:
        raise TrainingDataMissing(f"{split_dir} has no images in its manifest")
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return pixels, torch.tensor(labels, dtype=torch.long), class_names


def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip, on a uint8 batch."""
    n = batch.shape[0]
    padded = nn.functional.pad(batch, (PAD, PAD, PAD, PAD))
    offsets = torch.randint(0, 2 * PAD + 1, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    out = torch.empty_like(batch)
    for i in range(n):
        y, x = offsets[i].tolist()
        crop = padded[i, :, y:y + IMAGE_SIZE, x:x + IMAGE_SIZE]
        out[i] = crop.flip(-1) if flips[i] else crop
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


# --- model -----------------------------------------------------------------------------


def load_pretrained(net: ResNet18Cifar, width: int) -> None:
    """Copies torchvision's ImageNet ResNet-18 weights where shapes match (not the 7x7 stem, not fc)."""
    if width != 64:
        raise PretrainedWeightsUnavailable(f"--pretrained needs --width 64 (the ImageNet model's width), got {width}")
    from torchvision.models import ResNet18_Weights

    weights = ResNet18_Weights.IMAGENET1K_V1
    try:
        state = weights.get_state_dict(progress=True)
    except Exception as error:  # urllib/SSL/OS errors: all mean "cannot get the weights here"
        raise PretrainedWeightsUnavailable(
            f"could not download ImageNet weights from {weights.url} ({error}); train without --pretrained"
        ) from error
    own = net.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    net.load_state_dict(usable, strict=False)


def evaluate(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
             batch_size: int = 256) -> tuple[float, float, torch.Tensor]:
    """Mean loss, accuracy and softmax probabilities (on CPU) over a whole split."""
    net.eval()
    losses, probabilities = [], []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = inference.normalise(images[start:start + batch_size].to(device))
            y = labels[start:start + batch_size].to(device)
            logits = net(x).float()
            losses.append(nn.functional.cross_entropy(logits, y, reduction="sum").item())
            probabilities.append(torch.softmax(logits, 1).cpu())
    probs = torch.cat(probabilities)
    accuracy = (probs.argmax(1) == labels).float().mean().item()
    return sum(losses) / len(images), accuracy, probs


def confusion_matrix(labels: torch.Tensor, predicted: torch.Tensor, num_classes: int) -> list[list[int]]:
    matrix = torch.zeros(num_classes, num_classes, dtype=torch.long)
    for truth, guess in zip(labels.tolist(), predicted.tolist()):
        matrix[truth, guess] += 1
    return matrix.tolist()


def format_confusion(matrix: list[list[int]], class_names: list[str]) -> str:
    width = max(len(n) for n in class_names) + 2
    header = "true \\ predicted".ljust(width + 4) + "".join(n.rjust(width) for n in class_names)
    rows = [name.ljust(width + 4) + "".join(str(v).rjust(width) for v in row) for name, row in zip(class_names, matrix)]
    return "\n".join([header, *rows])


# --- the run ---------------------------------------------------------------------------


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def run(args: argparse.Namespace) -> TrainResult:
    started = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    generator = seed_everything(args.seed)
    device = inference.pick_device("cpu" if args.device == "auto" and os.environ.get("SM_NUM_GPUS") == "0" else args.device)
    train_dir = args.train_dir or args.data / "train"
    test_dir = args.test_dir or args.data / "test"
    train_x, train_y, class_names = load_split(Path(train_dir))
    test_x, test_y, test_classes = load_split(Path(test_dir))
    if test_classes != class_names:
        raise TrainingDataMissing(f"train classes {class_names} differ from test classes {test_classes}")
    if args.include_reviewed:
        train_x, train_y = add_reviewed(train_x, train_y, args.include_reviewed, class_names, test_x)
    inference._normalisation.update(mean=CIFAR100_MEAN, std=CIFAR100_STD)

    net = ResNet18Cifar(len(class_names), args.width)
    if args.pretrained:
        load_pretrained(net, args.width)
    net.to(device)
    use_amp = device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    optimizer = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=args.weight_decay)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(train_x, train_y), batch_size=args.batch_size, shuffle=True,
        generator=generator, num_workers=args.num_workers, drop_last=len(train_x) > args.batch_size,
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=len(loader))
    print(f"training {ARCHITECTURE} width={args.width} on {len(train_x)} images ({', '.join(class_names)}), "
          f"testing on {len(test_x)}, device={device}, threads={torch.get_num_threads()}", flush=True)

    history: list[EpochMetrics] = []
    best_state, best = None, None
    for epoch in range(1, args.epochs + 1):
        epoch_start = time.perf_counter()
        net.train()
        seen = correct = 0
        loss_sum = 0.0
        bar = tqdm(loader, desc=f"epoch {epoch}/{args.epochs}", unit="batch", leave=False, disable=args.quiet)
        for x, y in bar:
            if not args.no_augment:
                x = augment(x, generator)
            x, y = inference.normalise(x.to(device, non_blocking=True)), y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                logits = net(x)
                loss = nn.functional.cross_entropy(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
            seen += len(y)
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}")
        test_loss, test_acc, _ = evaluate(net, test_x, test_y, device)
        metrics = EpochMetrics(epoch, loss_sum / seen, correct / seen, test_loss, test_acc, time.perf_counter() - epoch_start)
        history.append(metrics)
        print(metrics.line(), flush=True)
        if best is None or metrics.test_acc > best.test_acc or (metrics.test_acc == best.test_acc and metrics.test_loss < best.test_loss):
            best, best_state = metrics, copy.deepcopy({k: v.detach().cpu() for k, v in net.state_dict().items()})

    net.load_state_dict(best_state)
    _, _, probs = evaluate(net, test_x, test_y, device)
    matrix = confusion_matrix(test_y, probs.argmax(1), len(class_names))
    print(f"best epoch={best.epoch} test_acc={best.test_acc:.4f} test_loss={best.test_loss:.4f}")
    print(format_confusion(matrix, class_names), flush=True)

    if in_sagemaker():
        model_dir = Path(os.environ.get("SM_MODEL_DIR", args.out))
    else:
        model_dir = Path(tempfile.mkdtemp(prefix="scones-train-"))
    write_model_dir(model_dir, best_state, args, class_names, best, probs, args.threshold)
    seconds = time.perf_counter() - started
    metrics_doc = {
        "best": asdict(best), "epochs": [asdict(m) for m in history], "confusion_matrix": matrix,
        "class_names": class_names, "train_seconds": round(seconds, 2), "device": str(device),
        "hyperparameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    artifact = None
    if in_sagemaker():
        output_dir = Path(os.environ.get("SM_OUTPUT_DATA_DIR", model_dir))
    else:
        output_dir = Path(args.out)
        artifact = pack_artifact(model_dir, output_dir / "model.tar.gz")
        print(f"wrote {artifact}")
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "metrics.json").write_text(json.dumps(metrics_doc, indent=2))
    return TrainResult(best, history, matrix, class_names, model_dir, artifact, seconds)


def write_model_dir(model_dir: Path, state: dict, args: argparse.Namespace, class_names: list[str],
                    best: EpochMetrics, probs: torch.Tensor, threshold: float) -> None:
    """model.pth (plain state_dict), model.json, baseline.json and code/: contract (A)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.save(state, model_dir / "model.pth")
    meta = {
        "architecture": ARCHITECTURE, "width": args.width, "class_names": class_names,
        "mean": list(CIFAR100_MEAN), "std": list(CIFAR100_STD), "image_size": IMAGE_SIZE, "metrics": asdict(best),
    }
    (model_dir / "model.json").write_text(json.dumps(meta, indent=2))
    predicted = probs.argmax(1).tolist()
    baseline = {
        "class_names": class_names,
        "max_confidence": [round(v, 6) for v in probs.max(1).values.tolist()],
        "predicted_class_counts": {name: predicted.count(i) for i, name in enumerate(class_names)},
        "threshold": threshold,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (model_dir / "baseline.json").write_text(json.dumps(baseline, indent=2))
    write_code_dir(model_dir)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except Exception as error:
        if in_sagemaker() or Path("/opt/ml").is_dir():
            # SageMaker shows this file as the training job's FailureReason.
            failure = Path(os.environ.get("SM_OUTPUT_DIR", "/opt/ml/output")) / "failure"
            failure.parent.mkdir(parents=True, exist_ok=True)
            failure.write_text(f"{type(error).__name__}: {error}\n\n{traceback.format_exc()}")
        if isinstance(error, TrainingError):
            print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
