"""filter_inferences: confident → classified; otherwise ThresholdConfidenceNotMet (→ review)."""
from __future__ import annotations

import pytest

from scones.lambdas.common.config import ConfigurationError, load_config
from scones.lambdas.common.inferences import InvalidInferences
from scones.lambdas.filter_inferences.threshold import ThresholdConfidenceNotMet, filter_inferences

LABELS = ["bicycle", "motorcycle"]


def test_confident_inference_is_classified_and_keeps_extra_keys():
    event = {"s3_key": "k", "inferences": [0.02, 0.98], "labels": LABELS, "batch": 7}
    output = filter_inferences(event, threshold=0.93)
    assert output["outcome"] == "classified"
    assert (output["label"], output["confidence"]) == ("motorcycle", 0.98)
    assert output["batch"] == 7 and output["s3_key"] == "k"


def test_confidence_equal_to_the_threshold_passes():
    assert filter_inferences({"inferences": [0.93, 0.07], "labels": LABELS}, 0.93)["label"] == "bicycle"


def test_low_confidence_raises_the_named_error_with_label_and_confidence():
    with pytest.raises(ThresholdConfidenceNotMet) as caught:
        filter_inferences({"inferences": [0.6, 0.4], "labels": LABELS}, 0.93)
    assert type(caught.value).__name__ == "ThresholdConfidenceNotMet"  # Step Functions' errorType
    assert "'bicycle'" in str(caught.value) and "0.6000" in str(caught.value) and "0.93" in str(caught.value)


@pytest.mark.parametrize(
    "event",
    [{}, {"inferences": [], "labels": []}, {"inferences": [0.5, 0.5], "labels": ["one"]},
     {"inferences": ["0.9", 0.1], "labels": LABELS}],
)
def test_malformed_inferences_are_named(event):
    with pytest.raises(InvalidInferences):
        filter_inferences(event, 0.93)


def test_threshold_comes_from_the_environment_with_a_default():
    assert load_config({}).threshold == 0.93
    assert load_config({"THRESHOLD": "0.5"}).threshold == 0.5
    assert load_config({"CLASS_NAMES": "bicycle, motorcycle"}).class_names == ("bicycle", "motorcycle")


@pytest.mark.parametrize("value", ["high", "1.5", "-0.1"])
def test_bad_threshold_is_a_configuration_error(value):
    with pytest.raises(ConfigurationError, match="THRESHOLD"):
        load_config({"THRESHOLD": value})


def test_missing_required_setting_names_the_variable():
    with pytest.raises(ConfigurationError, match="ENDPOINT_NAME"):
        load_config({}).require("endpoint_name")


def test_the_functions_default_threshold_is_the_projects():
    """The Lambda zip carries its own copy (stdlib + boto3 only); it must not drift from model/config.py."""
    from scones.lambdas.common import config as function_config
    from scones.model import config

    assert function_config.DEFAULT_THRESHOLD == config.DEFAULT_THRESHOLD
