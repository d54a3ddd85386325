"""Calibrated confidence: temperature scaling, expected calibration error, reliability bins, routing.

The workflow routes a photo to a person when its top probability is below the threshold, so
those probabilities must mean what they say. One temperature T, fitted on the validation
split (never the test split), divides the logits before the softmax (Guo et al. 2017,
"On Calibration of Modern Neural Networks"); it changes no prediction, only confidence.
"""
from __future__ import annotations

import math

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
