"""The chosen model's figures: calibrated confidence (temperature scaling, expected calibration
error, reliability bins), the routing figure, accuracy and the confusion matrix.

The workflow routes a photo to a person when its top probability is below the threshold, so
those probabilities must mean what they say. One temperature T, fitted on the validation
split (never the test split), divides the logits before the softmax (Guo et al. 2017,
"On Calibration of Modern Neural Networks"); it changes no prediction, only confidence.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

ECE_BINS = 15  # the usual choice in the calibration literature
RELIABILITY_BINS = 10
TEMPERATURE_RANGE = (0.05, 20.0)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T > 0 minimising the negative log-likelihood of softmax(logits / T): a 1-D convex search."""
    logits, labels = logits.detach().float(), labels.detach()

    def nll(log_t: float) -> float:
        return nn.functional.cross_entropy(logits / math.exp(log_t), labels).item()

    low, high = (math.log(v) for v in TEMPERATURE_RANGE)
    for _ in range(80):  # golden-section search on log T
        a, b = high - (high - low) / 1.618034, low + (high - low) / 1.618034
        if nll(a) < nll(b):
            high = b
        else:
            low = a
    return round(math.exp((low + high) / 2), 4)


def _bins(probs: torch.Tensor, labels: torch.Tensor, bins: int) -> list[dict]:
    confidence, predicted = probs.max(1)
    correct = (predicted == labels).float()
    rows = []
    for i in range(bins):
        lower, upper = i / bins, (i + 1) / bins
        inside = (confidence > lower) & (confidence <= upper) if i else (confidence <= upper)
        n = int(inside.sum())
        rows.append({
            "lower": lower, "upper": upper, "count": n,
            "accuracy": round(correct[inside].mean().item(), 4) if n else None,
            "confidence": round(confidence[inside].mean().item(), 4) if n else None,
        })
    return rows


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS) -> float:
    """Count-weighted mean |accuracy − confidence| over equal-width confidence bins."""
    total = len(labels)
    return round(sum(r["count"] / total * abs(r["accuracy"] - r["confidence"]) for r in _bins(probs, labels, bins) if r["count"]), 4)


def reliability(probs: torch.Tensor, labels: torch.Tensor, bins: int = RELIABILITY_BINS) -> list[dict]:
    """The reliability diagram's bars: per confidence bin, how many, how often right, how confident."""
    return _bins(probs, labels, bins)


def routing(probs: torch.Tensor, labels: torch.Tensor, threshold: float) -> dict:
    """What the workflow's filter would do: share auto-routed (top probability >= threshold), accuracy among them."""
    confidence, predicted = probs.max(1)
    routed = confidence >= threshold
    n = int(routed.sum())
    return {
        "threshold": threshold, "images": len(labels), "auto_routed": n,
        "auto_routed_share": round(n / len(labels), 4) if len(labels) else None,
        "auto_routed_accuracy": round((predicted[routed] == labels[routed]).float().mean().item(), 4) if n else None,
    }


def routing_line(figures: dict, split: str) -> str:
    share, accuracy = figures["auto_routed_share"], figures["auto_routed_accuracy"]
    return (f"{split} routing at threshold {figures['threshold']:g}: {figures['auto_routed']}/{figures['images']} "
            f"auto-routed ({share:.1%}), {'n/a' if accuracy is None else f'{accuracy:.1%}'} of them right; "
            f"{figures['images'] - figures['auto_routed']} to review")


@dataclass
class SplitReport:
    """The chosen model's figures on one split, with calibrated probabilities."""

    split: str
    images: int
    loss: float
    accuracy: float
    ece_before: float  # expected calibration error at T = 1
    ece_after: float  # ... after temperature scaling
    routing: dict  # share auto-routed at the threshold and accuracy among them (calibrated)

    def line(self) -> str:
        prefix = "test" if self.split == "test" else "val"
        return (f"{prefix}_acc={self.accuracy:.4f} {prefix}_loss={self.loss:.4f} {prefix}_ece_before={self.ece_before:.4f} "
                f"{prefix}_ece_after={self.ece_after:.4f} {prefix}_auto_routed={self.routing['auto_routed_share']:.4f} "
                f"{prefix}_auto_routed_acc={self.routing['auto_routed_accuracy'] or 0:.4f}")


def loss_and_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    return nn.functional.cross_entropy(logits, labels).item(), (logits.argmax(1) == labels).float().mean().item()


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


def split_report(split: str, logits: torch.Tensor, labels: torch.Tensor, temperature: float, threshold: float) -> tuple[SplitReport, torch.Tensor]:
    """A split's figures before and after temperature scaling; returns the calibrated probabilities too."""
    probs = torch.softmax(logits / temperature, 1)
    loss, accuracy = loss_and_accuracy(logits / temperature, labels)
    report = SplitReport(
        split, len(labels), loss, accuracy,
        expected_calibration_error(torch.softmax(logits, 1), labels),
        expected_calibration_error(probs, labels),
        routing(probs, labels, threshold),
    )
    return report, probs
