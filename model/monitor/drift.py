"""Drift: captured traffic against the baseline recorded at training time.

The baseline (baseline.json in model.tar.gz) holds the final model's max confidence for
every test image and its predicted-class counts. Captured max confidences are compared
with a two-sample Kolmogorov–Smirnov test, the class mix with a chi-square test of the
2×K contingency table (baseline counts vs captured counts).
"""
from __future__ import annotations

import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

from scones.model.config import DEFAULT_THRESHOLD

from .capture_reader import MonitorError

DEFAULT_ALPHA = 0.01
DEFAULT_MIN_SAMPLES = 20
BASELINE_MEMBER = "baseline.json"


class BaselineError(MonitorError):
    """The baseline is missing, unreadable, or not in the model artifact's format."""


@dataclass(frozen=True)
class Baseline:
    class_names: tuple[str, ...]
    max_confidence: tuple[float, ...]
    predicted_class_counts: dict[str, int]
    threshold: float
    created: str
    source: str
    routing: dict | None = None  # training's routing figures on the test split (share auto-routed, accuracy)
    calibration: dict | None = None  # temperature, ECE before/after, reliability bins (test split)

    @property
    def share_below_threshold(self) -> float:
        return float(np.mean(np.asarray(self.max_confidence) < self.threshold)) if self.max_confidence else 0.0


def _read_baseline_bytes(path: Path) -> bytes:
    if path.is_dir():
        path = path / BASELINE_MEMBER
    if not path.exists():
        raise BaselineError(f"no baseline at {path}")
    if path.name.endswith((".tar.gz", ".tgz", ".tar")):
        # Read the one member in memory: nothing is extracted, so no path can escape.
        with tarfile.open(path) as tar:
            member = next((m for m in tar.getmembers() if m.name.lstrip("./") == BASELINE_MEMBER), None)
            if member is None or not member.isfile():
                raise BaselineError(f"{path} holds no {BASELINE_MEMBER} (was the model trained with this version?)")
            return tar.extractfile(member).read()
    return path.read_bytes()


def load_baseline(path: Path | str) -> Baseline:
    """From model.tar.gz, an extracted model dir, or a baseline.json file."""
    path = Path(path)
    try:
        raw = json.loads(_read_baseline_bytes(path))
        return Baseline(
            class_names=tuple(raw["class_names"]),
            max_confidence=tuple(float(v) for v in raw["max_confidence"]),
            predicted_class_counts={str(k): int(v) for k, v in raw["predicted_class_counts"].items()},
            threshold=float(raw.get("threshold", DEFAULT_THRESHOLD)),
            created=str(raw.get("created", "")),
            source=str(path),
            routing=raw.get("routing"),
            calibration=raw.get("calibration"),
        )
    except (OSError, tarfile.TarError) as exc:
        raise BaselineError(f"cannot read baseline {path}: {exc}") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BaselineError(f"{path} is not a baseline.json ({type(exc).__name__}: {exc})") from None


@dataclass(frozen=True)
class TestResult:
    name: str
    statistic: float | None
    p_value: float | None
    drifted: bool
    note: str = ""


@dataclass(frozen=True)
class DriftResult:
    alpha: float
    captured_n: int
    baseline_n: int
    confidence: TestResult
    class_mix: TestResult
    captured_class_counts: dict[str, int]
    baseline_class_counts: dict[str, int]
    captured_mean_confidence: float | None
    baseline_mean_confidence: float | None
    captured_share_below: float | None
    baseline_share_below: float | None
    reasons: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return self.confidence.drifted or self.class_mix.drifted

    @property
    def verdict(self) -> str:
        if self.captured_n < 1 or (self.confidence.statistic is None and self.class_mix.statistic is None):
            return f"NO VERDICT: {self.confidence.note or 'no captured traffic'}"
        if self.drifted:
            return "DRIFT DETECTED: " + "; ".join(self.reasons)
        return (
            f"NO DRIFT: captured traffic matches the baseline (KS p={_p(self.confidence.p_value)}, "
            f"chi-square p={_p(self.class_mix.p_value)}, alpha={self.alpha})"
        )


def _p(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def confidence_test(baseline: Sequence[float], captured: Sequence[float], alpha: float) -> TestResult:
    result = stats.ks_2samp(np.asarray(baseline), np.asarray(captured))
    statistic, p_value = float(result.statistic), float(result.pvalue)
    return TestResult("two-sample Kolmogorov-Smirnov (max confidence)", statistic, p_value, p_value < alpha)


def class_mix_test(
    class_names: Sequence[str], baseline_counts: Mapping[str, int], captured_counts: Mapping[str, int], alpha: float
) -> TestResult:
    name = "chi-square, baseline vs captured class counts"
    table = np.array([[baseline_counts.get(c, 0) for c in class_names], [captured_counts.get(c, 0) for c in class_names]])
    table = table[:, table.sum(axis=0) > 0]  # a class neither side predicted carries no information
    if table.shape[1] < 2:
        only = "one class" if table.shape[1] == 1 else "no classes"
        # Both sides predicted the same single class: no difference in mix to test.
        return TestResult(name, 0.0, 1.0, False, f"{only} predicted on both sides")
    statistic, p_value, _, _ = stats.chi2_contingency(table, correction=False)
    return TestResult(name, float(statistic), float(p_value), float(p_value) < alpha)


def detect_drift(
    baseline: Baseline,
    captured_max_confidence: Sequence[float],
    captured_class_counts: Mapping[str, int],
    threshold: float,
    alpha: float = DEFAULT_ALPHA,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> DriftResult:
    """Flag drift when either test rejects "same distribution" at `alpha` (with enough samples)."""
    n = len(captured_max_confidence)
    baseline_counts = {c: baseline.predicted_class_counts.get(c, 0) for c in baseline.class_names}
    captured_counts = {c: int(captured_class_counts.get(c, 0)) for c in baseline.class_names}
    if n < min_samples:
        note = f"{n} captured request(s), fewer than the {min_samples} needed to test"
        skipped = TestResult("", None, None, False, note)
        confidence, class_mix = skipped, skipped
    else:
        confidence = confidence_test(baseline.max_confidence, captured_max_confidence, alpha)
        class_mix = class_mix_test(baseline.class_names, baseline_counts, captured_counts, alpha)
    captured = np.asarray(captured_max_confidence, dtype=float)
    reference = np.asarray(baseline.max_confidence, dtype=float)
    result = DriftResult(
        alpha=alpha,
        captured_n=n,
        baseline_n=len(reference),
        confidence=confidence,
        class_mix=class_mix,
        captured_class_counts=captured_counts,
        baseline_class_counts=baseline_counts,
        captured_mean_confidence=float(captured.mean()) if n else None,
        baseline_mean_confidence=float(reference.mean()) if len(reference) else None,
        captured_share_below=float((captured < threshold).mean()) if n else None,
        baseline_share_below=float((reference < threshold).mean()) if len(reference) else None,
    )
    if confidence.drifted:
        result.reasons.append(
            f"max-confidence distribution shifted (KS D={confidence.statistic:.3f}, p={_p(confidence.p_value)}; "
            f"mean {result.baseline_mean_confidence:.3f} → {result.captured_mean_confidence:.3f})"
        )
    if class_mix.drifted:
        result.reasons.append(
            f"class mix shifted (chi-square={class_mix.statistic:.2f}, p={_p(class_mix.p_value)}; "
            f"baseline {_shares(baseline_counts)} → captured {_shares(captured_counts)})"
        )
    return result


def _shares(counts: Mapping[str, int]) -> str:
    total = sum(counts.values()) or 1
    return ", ".join(f"{name} {count / total:.0%}" for name, count in counts.items())
