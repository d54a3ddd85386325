"""Temperature scaling, ECE, reliability bins and the routing figure, on numbers worked out by hand."""
from __future__ import annotations

import pytest
import torch

from scones.model import calibration


def test_fit_temperature_recovers_the_temperature_that_made_the_labels() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4000, 2, generator=generator) * 4
    true_temperature = 2.5
    labels = torch.multinomial(torch.softmax(logits / true_temperature, 1), 1, generator=generator).flatten()
    assert calibration.fit_temperature(logits, labels) == pytest.approx(true_temperature, rel=0.1)


def test_temperature_above_one_lowers_the_ece_of_an_overconfident_model() -> None:
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(4000, 2, generator=generator) * 6
    labels = torch.multinomial(torch.softmax(logits / 3, 1), 1, generator=generator).flatten()
    temperature = calibration.fit_temperature(logits, labels)
    before = calibration.expected_calibration_error(torch.softmax(logits, 1), labels)
    after = calibration.expected_calibration_error(torch.softmax(logits / temperature, 1), labels)
    assert temperature > 1 and after < before / 2


def test_ece_and_reliability_bins_by_hand() -> None:
    probs = torch.tensor([[0.95, 0.05], [0.95, 0.05], [0.35, 0.65], [0.35, 0.65]])
    labels = torch.tensor([0, 1, 1, 1])
    # bin (0.9, 1]: confidence 0.95, accuracy 0.5; bin (0.6, 0.7]: confidence 0.65, accuracy 1.0
    assert calibration.expected_calibration_error(probs, labels, bins=10) == pytest.approx(0.5 * 0.45 + 0.5 * 0.35)
    bins = {round(row["upper"], 1): row for row in calibration.reliability(probs, labels) if row["count"]}
    assert bins[1.0] == {"lower": 0.9, "upper": 1.0, "count": 2, "accuracy": 0.5, "confidence": 0.95}
    assert bins[0.7]["count"] == 2 and bins[0.7]["accuracy"] == 1.0


def test_routing_counts_the_threshold_itself_as_auto_routed() -> None:
    probs = torch.tensor([[0.93, 0.07], [0.2, 0.8], [0.01, 0.99], [0.96, 0.04]])
    labels = torch.tensor([0, 1, 0, 0])
    figures = calibration.routing(probs, labels, 0.93)
    assert figures == {"threshold": 0.93, "images": 4, "auto_routed": 3, "auto_routed_share": 0.75,
                       "auto_routed_accuracy": pytest.approx(2 / 3, abs=1e-4)}
    assert "3/4 auto-routed (75.0%)" in calibration.routing_line(figures, "test")
