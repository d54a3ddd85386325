"""The monitoring report: one self-contained HTML page, its PNG charts, a JSON summary
and a terminal table, all from the same figures.

The HTML embeds every image as a data URI so it can be mailed, archived as a CI artifact
or opened from S3 without the PNG files beside it.
"""
from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .capture_reader import CaptureReadResult, CaptureRecord
from .charts import Chart, render_charts
from .drift import DEFAULT_ALPHA, Baseline, DriftResult, detect_drift
from .outcomes import OUTCOMES, OutcomeSummary

GALLERY_SIZE = 12
THUMBNAIL_PX = 96
REPORT_FILE = "report.html"
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class GalleryItem:
    event_id: str
    inference_time: datetime
    label: str
    confidence: float
    thumbnail_png: bytes


@dataclass
class MonitorReport:
    capture: CaptureReadResult
    records: list[CaptureRecord]
    class_names: tuple[str, ...]
    threshold: float
    since: datetime | None
    baseline: Baseline | None
    drift: DriftResult | None
    outcomes: OutcomeSummary | None
    charts: list[Chart]
    gallery: list[GalleryItem]
    undecodable_images: int = 0
    generated_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def class_counts(self) -> dict[str, int]:
        counts = Counter(self.class_names[r.predicted_index] for r in self.records)
        return {name: counts[name] for name in self.class_names}

    @property
    def below_threshold(self) -> int:
        return sum(r.max_confidence < self.threshold for r in self.records)

    @property
    def below_threshold_share(self) -> float | None:
        return self.below_threshold / len(self.records) if self.records else None

    @property
    def drifted(self) -> bool:
        return bool(self.drift and self.drift.drifted)

    def to_json(self) -> dict:
        """The figures behind the report, for CI and scripts."""
        drift = self.drift
        return {
            "generated_at": self.generated_at.isoformat(),
            "capture_uri": self.capture.uri,
            "since": self.since.isoformat() if self.since else None,
            "objects_read": self.capture.objects_read,
            "captured_requests": len(self.records),
            "malformed_lines": self.capture.malformed_lines,
            "malformed_examples": self.capture.malformed_examples,
            "class_names": list(self.class_names),
            "class_counts": self.class_counts,
            "threshold": self.threshold,
            "below_threshold": self.below_threshold,
            "below_threshold_share": self.below_threshold_share,
            "outcomes": None if self.outcomes is None else {
                "executions": self.outcomes.executions if self.outcomes.from_executions else None,
                **{outcome: self.outcomes.count(outcome) for outcome in OUTCOMES},
                "failure_reasons": dict(self.outcomes.failure_reasons),
                "review_reasons": dict(self.outcomes.review_reasons),
                "notes": self.outcomes.notes,
                "human_review": self.outcomes.reviews.to_json() if self.outcomes.reviews else None,
            },
            "drift": None if drift is None else {
                "drifted": drift.drifted,
                "verdict": drift.verdict,
                "alpha": drift.alpha,
                "baseline": self.baseline.source if self.baseline else None,
                "baseline_n": drift.baseline_n,
                "ks_statistic": drift.confidence.statistic,
                "ks_p_value": drift.confidence.p_value,
                "chi2_statistic": drift.class_mix.statistic,
                "chi2_p_value": drift.class_mix.p_value,
                "captured_mean_confidence": drift.captured_mean_confidence,
                "baseline_mean_confidence": drift.baseline_mean_confidence,
                "captured_share_below": drift.captured_share_below,
                "baseline_share_below": drift.baseline_share_below,
                "baseline_class_counts": drift.baseline_class_counts,
            },
            "charts": [f"{chart.name}.png" for chart in self.charts],
        }


def thumbnail(image_bytes: bytes, size: int = THUMBNAIL_PX) -> bytes:
    """A PNG thumbnail; tiny CIFAR images are scaled up with hard pixels so they stay legible."""
    with Image.open(io.BytesIO(image_bytes)) as image:
        image = image.convert("RGB")
        scale = size / max(image.size)
        resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), resample)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()


def build_gallery(
    records: Sequence[CaptureRecord], class_names: Sequence[str], size: int = GALLERY_SIZE
) -> tuple[list[GalleryItem], int]:
    """The lowest-confidence captured images, and how many candidates could not be decoded."""
    gallery, undecodable = [], 0
    for record in sorted(records, key=lambda r: r.max_confidence):
        if len(gallery) >= size:
            break
        try:
            png = thumbnail(record.input_data)
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
            undecodable += 1
            continue
        gallery.append(GalleryItem(
            record.event_id, record.inference_time, class_names[record.predicted_index], record.max_confidence, png,
        ))
    return gallery, undecodable


def build_report(
    capture: CaptureReadResult,
    class_names: Sequence[str],
    threshold: float,
    baseline: Baseline | None = None,
    outcomes: OutcomeSummary | None = None,
    since: datetime | None = None,
    alpha: float = DEFAULT_ALPHA,
    gallery_size: int = GALLERY_SIZE,
) -> MonitorReport:
    """Every figure of the report from what was read; records that do not fit the classes are malformed."""
    class_names = tuple(class_names)
    records = []
    for record in capture.records:
        if len(record.probabilities) == len(class_names):
            records.append(record)
        else:
            capture.add_malformed(
                f"{record.source_key} event {record.event_id}",
                f"{len(record.probabilities)} probabilities for {len(class_names)} classes",
            )
    drift = None
    if baseline is not None:
        counts = Counter(class_names[r.predicted_index] for r in records)
        drift = detect_drift(baseline, [r.max_confidence for r in records], counts, threshold, alpha)
    charts = render_charts(
        records, class_names, threshold,
        baseline.max_confidence if baseline else (),
        drift.baseline_share_below if drift else None,
    )
    gallery, undecodable = build_gallery(records, class_names, gallery_size)
    return MonitorReport(
        capture, records, class_names, threshold, since, baseline, drift, outcomes, charts, gallery, undecodable,
    )


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _fmt(value, spec: str = "") -> str:
    return "n/a" if value is None else format(value, spec)


def _rows(pairs: Sequence[tuple[str, str]]) -> str:
    return "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in pairs)


def summary_rows(report: MonitorReport) -> list[tuple[str, str]]:
    """(figure, value) pairs shared by the HTML page and the terminal table."""
    n = len(report.records)
    counts = report.class_counts
    rows = [
        ("capture", report.capture.uri),
        ("since", report.since.isoformat() if report.since else "all captured"),
        ("captured requests", f"{n} (from {report.capture.objects_read} file(s))"),
        ("malformed lines skipped", str(report.capture.malformed_lines)),
        ("predicted classes", ", ".join(f"{c} {k} ({k / n:.0%})" if n else f"{c} 0" for c, k in counts.items())),
        ("below threshold", f"{report.below_threshold} of {n} ({_fmt(report.below_threshold_share, '.1%')}) "
                            f"at {report.threshold:g}"),
    ]
    if report.outcomes is not None:
        outcome_text = ", ".join(f"{o} {_fmt(report.outcomes.count(o))}" for o in OUTCOMES)
        rows.append(("workflow outcomes", outcome_text))
        if report.outcomes.failure_reasons:
            rows.append(("failure reasons", ", ".join(f"{k} ×{v}" for k, v in report.outcomes.failure_reasons.most_common())))
        if report.outcomes.review_reasons:
            rows.append(("review reasons", ", ".join(f"{k} ×{v}" for k, v in report.outcomes.review_reasons.most_common())))
        if report.outcomes.reviews is not None:
            rows += report.outcomes.reviews.rows()
    drift = report.drift
    if drift is not None:
        rows += [
            ("baseline", f"{report.baseline.source} ({drift.baseline_n} test images, created {report.baseline.created})"),
            ("mean max confidence", f"captured {_fmt(drift.captured_mean_confidence, '.4f')} vs "
                                    f"baseline {_fmt(drift.baseline_mean_confidence, '.4f')}"),
            ("share below threshold", f"captured {_fmt(drift.captured_share_below, '.1%')} vs "
                                      f"baseline {_fmt(drift.baseline_share_below, '.1%')}"),
            ("KS test (confidence)", f"D={_fmt(drift.confidence.statistic, '.4f')}, p={_fmt(drift.confidence.p_value, '.3g')}"),
            ("chi-square (class mix)", f"χ²={_fmt(drift.class_mix.statistic, '.3f')}, p={_fmt(drift.class_mix.p_value, '.3g')}"),
            ("verdict", drift.verdict),
        ]
    else:
        rows.append(("verdict", "NO VERDICT: no baseline given (--baseline model.tar.gz)"))
    return rows


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:70rem;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem} .muted{color:#666;font-size:.9rem}
.verdict{padding:.8rem 1rem;border-radius:.4rem;font-weight:600;margin:1rem 0}
.drift{background:#fde2e1;border:1px solid #d62728} .ok{background:#e3f4e1;border:1px solid #2ca02c}
.none{background:#eee;border:1px solid #999}
table{border-collapse:collapse;margin:.5rem 0 1.5rem} th,td{text-align:left;padding:.3rem .8rem;border-bottom:1px solid #ddd;vertical-align:top}
th{font-weight:600;white-space:nowrap}
.charts img{max-width:100%;display:block;margin:0 0 1.5rem}
.gallery{display:flex;flex-wrap:wrap;gap:1rem} figure{margin:0;text-align:center;font-size:.8rem}
figure img{image-rendering:pixelated;border:1px solid #ccc}
"""


def render_html(report: MonitorReport) -> str:
    drift = report.drift
    verdict_class = "none" if drift is None or drift.verdict.startswith("NO VERDICT") else ("drift" if drift.drifted else "ok")
    verdict = drift.verdict if drift else "NO VERDICT: no baseline given"
    charts = "".join(f'<img src="{_data_uri(c.png)}" alt="{html.escape(c.title)}">' for c in report.charts)
    gallery = "".join(
        f'<figure><img src="{_data_uri(g.thumbnail_png)}" alt="{html.escape(g.label)}" '
        f'width="{THUMBNAIL_PX}" height="{THUMBNAIL_PX}"><figcaption>{html.escape(g.label)} '
        f'{g.confidence:.3f}<br><span class="muted">{g.inference_time:%Y-%m-%d %H:%M:%S}</span></figcaption></figure>'
        for g in report.gallery
    ) or '<p class="muted">no decodable captured images</p>'
    malformed = "".join(f"<li><code>{html.escape(m)}</code></li>" for m in report.capture.malformed_examples)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Scones Unlimited — monitoring report</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>
<body>
<h1>Scones Unlimited — monitoring report</h1>
<p class="muted">generated {report.generated_at:%Y-%m-%d %H:%M:%S} UTC from {html.escape(report.capture.uri)}</p>
<div class="verdict {verdict_class}" id="verdict">{html.escape(verdict)}</div>
<h2>Summary</h2><table id="summary">{_rows(summary_rows(report))}</table>
<h2>Charts</h2><div class="charts">{charts}</div>
<h2>Lowest-confidence captured images</h2><div class="gallery" id="gallery">{gallery}</div>
{f'<h2>Malformed capture lines (first {len(report.capture.malformed_examples)})</h2><ul>{malformed}</ul>' if malformed else ''}
</body></html>
"""


def write_report(report: MonitorReport, out_dir: Path) -> Path:
    """Write report.html, summary.json and one PNG per chart into `out_dir`; returns the HTML path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for chart in report.charts:
        (out_dir / f"{chart.name}.png").write_bytes(chart.png)
    (out_dir / SUMMARY_FILE).write_text(json.dumps(report.to_json(), indent=2) + "\n")
    html_path = out_dir / REPORT_FILE
    html_path.write_text(render_html(report), encoding="utf-8")
    return html_path


def print_summary(report: MonitorReport, console=None) -> None:
    """The same figures as the HTML page, as a rich table."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title="Scones monitoring summary", show_header=False)
    table.add_column("figure", style="bold")
    table.add_column("value")
    for key, value in summary_rows(report):
        style = ("red bold" if report.drifted else "green") if key == "verdict" else None
        table.add_row(key, value, style=style)
    console.print(table)


def generate_report(
    session,
    capture_uri: str,
    out_dir: Path,
    *,
    class_names: Sequence[str],
    threshold: float,
    baseline: Baseline | None = None,
    state_machine_arn: str | None = None,
    outcomes_bucket: str | None = None,
    since: datetime | None = None,
    alpha: float = DEFAULT_ALPHA,
    show_progress: bool = True,
) -> tuple[MonitorReport, Path]:
    """Read capture and outcomes through `session`, then write the report; the one call the CLI and demo make."""
    from rich.progress import track

    from .capture_reader import list_capture_objects, read_capture_objects
    from .outcomes import summarize_outcomes

    s3 = session.client("s3")
    keys = list_capture_objects(s3, capture_uri, since)
    if show_progress and keys:
        keys = track(keys, description=f"Reading {len(keys)} capture file(s)", transient=True)
    capture = read_capture_objects(s3, capture_uri, keys, since)
    outcomes = None
    if state_machine_arn or outcomes_bucket:
        outcomes = summarize_outcomes(session, state_machine_arn, outcomes_bucket, since)
    report = build_report(capture, class_names, threshold, baseline, outcomes, since, alpha)
    return report, write_report(report, out_dir)
