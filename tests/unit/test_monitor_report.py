"""Charts, HTML, JSON summary and terminal table from in-memory capture records (no network)."""
from __future__ import annotations

import base64
import io
import json
import re
from datetime import datetime, timedelta, timezone

from PIL import Image
from rich.console import Console

from scones.model.monitor.capture_reader import CaptureReadResult, CaptureRecord
from scones.model.monitor.charts import choose_buckets
from scones.model.monitor.drift import Baseline
from scones.model.monitor.outcomes import OutcomeSummary
from scones.model.monitor.report import build_report, print_summary, write_report

CLASSES = ("bicycle", "motorcycle")
START = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def png(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def records(confidences, minutes_apart=7.0, image=None):
    out = []
    for i, confidence in enumerate(confidences):
        probabilities = (confidence, 1 - confidence) if i % 3 else (1 - confidence, confidence)
        out.append(CaptureRecord(f"e{i}", START + timedelta(minutes=i * minutes_apart), "image/png",
                                 image if image is not None else png((i * 9 % 255, 80, 160)), probabilities, "k"))
    return out


def baseline() -> Baseline:
    return Baseline(CLASSES, tuple([0.99] * 150 + [0.9] * 50), {"bicycle": 100, "motorcycle": 100}, 0.93, "t", "b.json")


def test_report_numbers_files_and_html(tmp_path):
    confidences = [0.99] * 20 + [0.6] * 20
    capture = CaptureReadResult("s3://b/datacapture/ep", records(confidences), objects_read=2, malformed_lines=1,
                                malformed_examples=["k:3: not JSON"])
    outcomes = OutcomeSummary(state_machine_arn="arn:sm", bucket="b", executions=4)
    outcomes.counts.update(classified=2, review=1, failed=1)
    outcomes.failure_reasons["ImageNotFound"] += 1
    report = build_report(capture, CLASSES, 0.93, baseline(), outcomes, gallery_size=5)

    assert len(report.records) == 40 and report.below_threshold == 20 and report.below_threshold_share == 0.5
    assert report.class_counts == {"bicycle": 26, "motorcycle": 14}  # every third record leans motorcycle
    assert [g.confidence for g in report.gallery] == [0.6] * 5

    html_path = write_report(report, tmp_path / "out")
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["below_threshold_share.png", "class_mix_over_time.png", "confidence_histogram.png",
                     "confidence_over_time.png", "report.html", "request_volume.png", "summary.json"]
    for chart in report.charts:
        with Image.open(tmp_path / "out" / f"{chart.name}.png") as image:
            assert image.width > 300 and image.height > 150
    page = html_path.read_text()
    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(uris) == 5 + 5  # charts + gallery
    for uri in uris:
        Image.open(io.BytesIO(base64.b64decode(uri))).verify()
    assert "ImageNotFound" in page and "k:3: not JSON" in page and 'class="verdict' in page

    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["captured_requests"] == 40 and summary["malformed_lines"] == 1
    assert summary["below_threshold"] == 20 and summary["outcomes"]["failed"] == 1
    assert summary["drift"]["drifted"] is True and summary["drift"]["ks_p_value"] < 0.01


def test_records_that_do_not_fit_the_classes_are_counted_malformed():
    three = CaptureRecord("x", START, "image/png", b"", (0.2, 0.3, 0.5), "k")
    capture = CaptureReadResult("s3://b/p", records([0.99, 0.98]) + [three])
    report = build_report(capture, CLASSES, 0.93)
    assert len(report.records) == 2 and capture.malformed_lines == 1
    assert "3 probabilities for 2 classes" in capture.malformed_examples[0]


def test_undecodable_images_are_left_out_of_the_gallery():
    capture = CaptureReadResult("s3://b/p", records([0.7, 0.8], image=b"not an image"))
    report = build_report(capture, CLASSES, 0.93)
    assert report.gallery == [] and report.undecodable_images == 2


def test_empty_capture_still_makes_a_report(tmp_path):
    report = build_report(CaptureReadResult("s3://b/p"), CLASSES, 0.93, baseline())
    assert report.drift.verdict.startswith("NO VERDICT")
    assert write_report(report, tmp_path).exists()
    assert len(report.charts) == 5


def test_terminal_summary_shows_the_same_figures():
    report = build_report(CaptureReadResult("s3://b/p", records([0.99] * 19 + [0.5])), CLASSES, 0.93, baseline())
    console = Console(record=True, width=200)
    print_summary(report, console)
    text = console.export_text()
    assert "1 of 20 (5.0%)" in text and "KS test" in text and "verdict" in text


def test_buckets_are_hourly_for_long_spans_and_finer_for_bursts():
    hours = [START + timedelta(minutes=17 * i) for i in range(30)]
    assert choose_buckets(hours).label == "hour" and len(choose_buckets(hours).starts) == 9
    burst = [START + timedelta(seconds=i) for i in range(20)]
    assert choose_buckets(burst).label == "second"


def test_training_routing_calibration_and_reliability_diagram_from_the_baseline(tmp_path):
    bins = [{"lower": i / 10, "upper": (i + 1) / 10, "count": 0, "accuracy": None, "confidence": None} for i in range(10)]
    before = [*bins[:9], {"lower": 0.9, "upper": 1.0, "count": 200, "accuracy": 0.9, "confidence": 0.97}]
    after = [*bins[:8], {"lower": 0.8, "upper": 0.9, "count": 40, "accuracy": 0.7, "confidence": 0.86},
             {"lower": 0.9, "upper": 1.0, "count": 160, "accuracy": 0.98, "confidence": 0.96}]
    calibration = {"temperature": 1.4, "fitted_on": "validation", "reported_on": "test", "ece_before": 0.07,
                   "ece_after": 0.02, "reliability_before": before, "reliability_after": after}
    routing = {"threshold": 0.93, "images": 200, "auto_routed": 160, "auto_routed_share": 0.8, "auto_routed_accuracy": 0.9875}
    base = Baseline(CLASSES, (0.99,) * 200, {"bicycle": 100, "motorcycle": 100}, 0.93, "t", "b.json", routing, calibration)
    report = build_report(CaptureReadResult("s3://b/c/ep", records([0.99] * 30 + [0.6] * 10)), CLASSES, 0.93, base)

    assert report.charts[-1].name == "reliability"
    write_report(report, tmp_path)
    with Image.open(tmp_path / "reliability.png") as image:
        assert image.width > 300
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["training_routing"]["auto_routed_share"] == 0.8 and summary["auto_routed_share"] == 0.75
    assert summary["training_calibration"]["ece_after"] == 0.02
    console = Console(record=True, width=200)
    print_summary(report, console)
    text = console.export_text()
    assert "80.0% of 200 auto-routed at 0.93, 98.8% of them right" in text
    assert "ECE 0.070 → 0.020 with temperature 1.4 fitted on validation" in text
    assert "30 of 40 (75.0%)" in text
