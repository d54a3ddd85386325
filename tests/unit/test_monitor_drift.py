"""Drift tests against a baseline, and loading the baseline from a model artifact (no network)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fixtures.promote_fixtures import write_tar

from scones.model.monitor.drift import Baseline, BaselineError, detect_drift, load_baseline

CLASSES = ("bicycle", "motorcycle")


def make_baseline(seed: int = 0, n: int = 200) -> Baseline:
    confidence = np.clip(1 - np.random.default_rng(seed).exponential(0.04, n), 0.5, 1.0)
    return Baseline(CLASSES, tuple(confidence.tolist()), {"bicycle": n // 2, "motorcycle": n - n // 2}, 0.93, "t", "mem")


def test_same_distribution_is_not_flagged():
    baseline = make_baseline()
    captured = make_baseline(seed=1, n=120)
    result = detect_drift(baseline, captured.max_confidence, {"bicycle": 61, "motorcycle": 59}, 0.93)
    assert not result.drifted
    assert result.confidence.p_value > 0.01 and result.class_mix.p_value > 0.01
    assert result.verdict.startswith("NO DRIFT")


def test_lower_confidence_is_flagged_by_ks():
    baseline = make_baseline()
    lowered = np.clip(np.asarray(make_baseline(seed=2, n=100).max_confidence) - 0.2, 0.5, 1.0)
    result = detect_drift(baseline, lowered.tolist(), {"bicycle": 50, "motorcycle": 50}, 0.93)
    assert result.confidence.drifted and not result.class_mix.drifted
    assert result.confidence.p_value < 1e-6
    assert result.captured_share_below > result.baseline_share_below
    assert result.verdict.startswith("DRIFT DETECTED") and "max-confidence" in result.verdict


def test_one_class_only_is_flagged_by_chi_square():
    baseline = make_baseline()
    result = detect_drift(baseline, make_baseline(seed=3, n=80).max_confidence, {"bicycle": 80}, 0.93)
    assert result.class_mix.drifted and not result.confidence.drifted
    assert result.captured_class_counts == {"bicycle": 80, "motorcycle": 0}
    assert "class mix shifted" in result.verdict and "bicycle 100%" in result.verdict


def test_too_few_samples_gives_no_verdict():
    result = detect_drift(make_baseline(), [0.5] * 5, {"bicycle": 5}, 0.93)
    assert not result.drifted and result.verdict.startswith("NO VERDICT") and "fewer than" in result.verdict


BASELINE_JSON = {"class_names": list(CLASSES), "max_confidence": [0.99, 0.95, 0.7],
                 "predicted_class_counts": {"bicycle": 2, "motorcycle": 1}, "threshold": 0.9, "created": "2026-03-01T00:00:00Z"}


def test_loads_baseline_from_artifact_dir_and_file(tmp_path):
    data = json.dumps(BASELINE_JSON).encode()
    from_tar = load_baseline(write_tar(tmp_path / "model.tar.gz", {"model.pth": b"x", "baseline.json": data}))
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "baseline.json").write_bytes(data)
    from_dir = load_baseline(tmp_path / "dir")
    from_file = load_baseline(tmp_path / "dir" / "baseline.json")
    for baseline in (from_tar, from_dir, from_file):
        assert baseline.class_names == CLASSES and baseline.max_confidence == (0.99, 0.95, 0.7)
        assert baseline.threshold == 0.9 and baseline.share_below_threshold == pytest.approx(1 / 3)


def test_bad_baselines_are_named_errors(tmp_path):
    with pytest.raises(BaselineError, match="no baseline.json"):
        load_baseline(write_tar(tmp_path / "model.tar.gz", {"model.pth": b"x"}))
    (tmp_path / "bad.json").write_text('{"class_names": ["a"]}')
    with pytest.raises(BaselineError, match="not a baseline.json"):
        load_baseline(tmp_path / "bad.json")
    with pytest.raises(BaselineError, match="no baseline"):
        load_baseline(tmp_path / "missing.json")
