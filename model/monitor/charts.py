"""The report's charts, as PNG bytes.

Figures are built with matplotlib's object API on the Agg canvas (no pyplot, no global
backend state), so the report renders the same headless, in a thread, or in CI.
"""
from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import matplotlib.dates as mdates
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .capture_reader import CaptureRecord

# Time buckets from coarse to fine: hourly for a deployment, finer for a short test burst.
BUCKETS = (
    (timedelta(hours=1), "hour"),
    (timedelta(minutes=10), "10 minutes"),
    (timedelta(minutes=1), "minute"),
    (timedelta(seconds=10), "10 seconds"),
    (timedelta(seconds=1), "second"),
)
MIN_BUCKETS = 4
THRESHOLD_COLOUR = "#d62728"
BASELINE_COLOUR = "#7f7f7f"
DPI = 100


@dataclass(frozen=True)
class Chart:
    name: str  # file stem, e.g. "confidence_over_time"
    title: str
    png: bytes


@dataclass(frozen=True)
class TimeBuckets:
    size: timedelta
    label: str
    starts: list[datetime]
    index: np.ndarray  # bucket number of each record


def choose_buckets(times: Sequence[datetime]) -> TimeBuckets:
    """The coarsest bucket (at most an hour) that still splits the span into a few bars."""
    span = times[-1] - times[0] if times else timedelta(0)
    size, label = next(((s, lbl) for s, lbl in BUCKETS if span >= s * MIN_BUCKETS), BUCKETS[-1])
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    first = epoch + size * ((times[0] - epoch) // size) if times else epoch
    index = np.array([(t - first) // size for t in times], dtype=int)
    count = int(index.max()) + 1 if len(index) else 0
    return TimeBuckets(size, label, [first + size * i for i in range(count)], index)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    FigureCanvasAgg(figure)
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def _figure(title: str, empty: bool = False) -> tuple[Figure, object]:
    """A titled chart; `empty` writes "no captured requests" across it instead of data."""
    figure = Figure(figsize=(8, 3.6))
    axes = figure.add_subplot()
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    if empty:
        _empty(axes)
    return figure, axes


def _empty(axes, text: str = "no captured requests") -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes, fontsize=12, color="grey")
    axes.set_xticks([])
    axes.set_yticks([])


def _time_axis(axes) -> None:
    locator = mdates.AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    axes.set_xlabel("inference time (UTC)")


def _bar_width(buckets: TimeBuckets) -> float:
    return buckets.size / timedelta(days=1) * 0.85  # matplotlib dates are in days


def _share_per_bucket(buckets: TimeBuckets, selected: np.ndarray) -> np.ndarray:
    """The share of each bucket's records that are selected (0 for an empty bucket)."""
    totals = np.bincount(buckets.index, minlength=len(buckets.starts)).astype(float)
    counts = np.bincount(buckets.index, weights=selected, minlength=len(buckets.starts))
    return np.divide(counts, totals, out=np.zeros_like(totals), where=totals > 0)


def confidence_over_time(records: Sequence[CaptureRecord], class_names: Sequence[str], threshold: float) -> Chart:
    title = "Max confidence over inference time"
    figure, axes = _figure(title, empty=not records)
    if records:
        predicted = np.array([r.predicted_index for r in records])
        times = np.array([r.inference_time for r in records])
        confidence = np.array([r.max_confidence for r in records])
        for index, name in enumerate(class_names):
            chosen = predicted == index
            if chosen.any():
                axes.scatter(times[chosen], confidence[chosen], s=14, alpha=0.75, label=f"predicted {name}")
        below = int((confidence < threshold).sum())
        axes.axhline(threshold, color=THRESHOLD_COLOUR, linestyle="--", label=f"threshold {threshold:g} ({below} below)")
        axes.set_ylim(min(0.45, confidence.min() - 0.05), 1.02)
        axes.set_ylabel("max confidence")
        _time_axis(axes)
        axes.legend(loc="lower left", fontsize=8)
    return Chart("confidence_over_time", title, _png(figure))


def confidence_histogram(
    records: Sequence[CaptureRecord], threshold: float, baseline_confidence: Sequence[float] = ()
) -> Chart:
    title = "Max confidence: captured vs training baseline"
    figure, axes = _figure(title, empty=not records)
    if records:
        confidence = np.array([r.max_confidence for r in records])
        low = min(confidence.min(), min(baseline_confidence, default=1.0), 0.5)
        bins = np.linspace(np.floor(low * 20) / 20, 1.0, 26)
        axes.hist(confidence, bins=bins, density=True, alpha=0.6, label=f"captured (n={len(confidence)})")
        if len(baseline_confidence):
            axes.hist(
                baseline_confidence, bins=bins, density=True, histtype="step", linewidth=2,
                color=BASELINE_COLOUR, label=f"baseline (n={len(baseline_confidence)})",
            )
        axes.axvline(threshold, color=THRESHOLD_COLOUR, linestyle="--", label=f"threshold {threshold:g}")
        axes.set_xlabel("max confidence")
        axes.set_ylabel("density")
        axes.legend(loc="upper left", fontsize=8)
    return Chart("confidence_histogram", title, _png(figure))


def class_mix_over_time(records: Sequence[CaptureRecord], class_names: Sequence[str]) -> Chart:
    buckets = choose_buckets([r.inference_time for r in records])
    title = f"Predicted-class mix per {buckets.label}"
    figure, axes = _figure(title, empty=not records)
    if records:
        predicted = np.array([r.predicted_index for r in records])
        bottom = np.zeros(len(buckets.starts))
        for index, name in enumerate(class_names):
            share = _share_per_bucket(buckets, predicted == index)
            axes.bar(buckets.starts, share, bottom=bottom, width=_bar_width(buckets), align="edge", label=name)
            bottom += share
        axes.set_ylim(0, 1)
        axes.set_ylabel("share of requests")
        _time_axis(axes)
        axes.legend(loc="lower left", fontsize=8)
    return Chart("class_mix_over_time", title, _png(figure))


def below_threshold_share(records: Sequence[CaptureRecord], threshold: float, baseline_share: float | None) -> Chart:
    buckets = choose_buckets([r.inference_time for r in records])
    title = f"Share below threshold {threshold:g} per {buckets.label}"
    figure, axes = _figure(title, empty=not records)
    if records:
        share = _share_per_bucket(buckets, np.array([r.max_confidence < threshold for r in records]))
        axes.bar(buckets.starts, share, width=_bar_width(buckets), align="edge", color="#ff7f0e", label="captured")
        if baseline_share is not None:
            axes.axhline(baseline_share, color=BASELINE_COLOUR, linestyle=":", label=f"baseline {baseline_share:.1%}")
            axes.legend(loc="upper left", fontsize=8)
        axes.set_ylim(0, max(1e-9, share.max(), baseline_share or 0) * 1.15)
        axes.yaxis.set_major_formatter(lambda value, _: f"{value:.0%}")
        axes.set_ylabel("share below threshold")
        _time_axis(axes)
    return Chart("below_threshold_share", title, _png(figure))


def request_volume(records: Sequence[CaptureRecord]) -> Chart:
    buckets = choose_buckets([r.inference_time for r in records])
    title = f"Captured requests per {buckets.label}"
    figure, axes = _figure(title, empty=not records)
    if records:
        counts = np.bincount(buckets.index, minlength=len(buckets.starts))
        axes.bar(buckets.starts, counts, width=_bar_width(buckets), align="edge", color="#2ca02c")
        axes.set_ylabel("requests")
        _time_axis(axes)
    return Chart("request_volume", title, _png(figure))


def reliability_diagram(calibration: Mapping) -> Chart:
    """Accuracy against confidence per bin on the test split, before and after temperature scaling.

    `calibration` is baseline.json's "calibration" section, written by training; a perfectly
    calibrated model's bars sit on the diagonal.
    """
    title = (f"Reliability on the {calibration.get('reported_on', 'test')} split: T={calibration['temperature']:g} "
             f"fitted on {calibration.get('fitted_on', 'validation')}")
    figure, axes = _figure(title)
    axes.plot([0, 1], [0, 1], color=BASELINE_COLOUR, linestyle=":", label="perfect calibration")
    for key, label, offset, style in (("reliability_before", "before", -0.2, {"alpha": 0.45}),
                                      ("reliability_after", "after", 0.2, {"alpha": 0.85})):
        rows = [r for r in calibration[key] if r["count"]]
        width = (rows[0]["upper"] - rows[0]["lower"]) * 0.4 if rows else 0.04
        centres = np.array([(r["lower"] + r["upper"]) / 2 for r in rows])
        ece = calibration[f"ece_{label}"]
        axes.bar(centres + offset * width * 2.5, [r["accuracy"] for r in rows], width=width, **style,
                 label=f"{label} temperature scaling (ECE {ece:.3f})")
        axes.scatter(centres + offset * width * 2.5, [r["confidence"] for r in rows], marker="_", s=120, color="black")
    axes.set_xlim(0, 1.02)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("confidence (max probability; black ticks = mean confidence in the bin)")
    axes.set_ylabel("accuracy")
    axes.legend(loc="upper left", fontsize=8)
    return Chart("reliability", title, _png(figure))


def render_charts(
    records: Sequence[CaptureRecord],
    class_names: Sequence[str],
    threshold: float,
    baseline_confidence: Sequence[float] = (),
    baseline_share_below: float | None = None,
    calibration: Mapping | None = None,
) -> list[Chart]:
    """Every chart of the report, in the order the report shows them."""
    reliability = [reliability_diagram(calibration)] if calibration else []
    return [
        confidence_over_time(records, class_names, threshold),
        confidence_histogram(records, threshold, baseline_confidence),
        class_mix_over_time(records, class_names),
        below_threshold_share(records, threshold, baseline_share_below),
        request_volume(records),
        *reliability,
    ]
