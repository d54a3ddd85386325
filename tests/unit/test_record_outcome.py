"""record_outcome: the review and failure records in S3, and the execution's final output."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import boto3
import pytest
from moto import mock_aws

from scones.lambdas.common.config import load_config
from scones.lambdas.common.images import InvalidInput
from scones.lambdas.record_outcome.records import error_message, record_outcome

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
EXECUTION_ID = "arn:aws:states:us-east-1:123456789012:execution:scones-workflow:run-1"
CONFIG = load_config({"BUCKET": "records", "THRESHOLD": "0.93"})


def lambda_cause(message: str, error_type: str) -> str:
    return json.dumps({"errorMessage": message, "errorType": error_type, "stackTrace": []})


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="records")
        yield client


def read(s3, key: str) -> dict:
    return json.loads(s3.get_object(Bucket="records", Key=key)["Body"].read())


def test_review_writes_the_record_and_returns_the_review_outcome(s3):
    reason = "best label 'bicycle' has confidence 0.6000, below the threshold 0.93"
    state = {"s3_bucket": "images", "s3_key": "test/a.png", "inferences": [0.6, 0.4],
             "labels": ["bicycle", "motorcycle"], "batch": 3,
             "failure": {"Error": "ThresholdConfidenceNotMet", "Cause": lambda_cause(reason, "ThresholdConfidenceNotMet")}}
    event = {"outcome": "review", "execution_id": EXECUTION_ID, "execution_name": "run-1", "state": state}
    output = record_outcome(event, s3, CONFIG, NOW)
    assert output == {"s3_bucket": "images", "s3_key": "test/a.png", "inferences": [0.6, 0.4],
                      "labels": ["bicycle", "motorcycle"], "batch": 3, "outcome": "review",
                      "label": "bicycle", "confidence": 0.6, "reason": reason,
                      "review_record": "s3://records/review/run-1.json"}
    assert read(s3, "review/run-1.json") == {
        "execution_id": EXECUTION_ID, "s3_bucket": "images", "s3_key": "test/a.png",
        "image": "s3://images/test/a.png", "inferences": [0.6, 0.4], "labels": ["bicycle", "motorcycle"],
        "label": "bicycle", "confidence": 0.6, "threshold": 0.93, "reason": reason,
        "recorded_at": "2026-01-02T03:04:05+00:00"}


def test_failure_writes_the_record_and_returns_error_and_cause(s3):
    state = {"s3_bucket": "images", "s3_key": "nope.png", "image_data": "AAAA",
             "failure": {"Error": "ImageNotFound", "Cause": lambda_cause("no object s3://images/nope.png", "ImageNotFound")}}
    event = {"outcome": "failed", "execution_id": EXECUTION_ID, "execution_name": "run-1", "state": state}
    output = record_outcome(event, s3, CONFIG, NOW)
    assert output == {"outcome": "failed", "error": "ImageNotFound", "cause": "no object s3://images/nope.png",
                      "failure_record": "s3://records/failed/run-1.json"}
    assert read(s3, "failed/run-1.json") == {
        "execution_id": EXECUTION_ID, "s3_bucket": "images", "s3_key": "nope.png", "error": "ImageNotFound",
        "cause": "no object s3://images/nope.png", "recorded_at": "2026-01-02T03:04:05+00:00"}


def test_error_message_reads_lambda_causes_and_keeps_plain_text():
    assert error_message(lambda_cause("boom", "ModelError")) == "boom"
    assert error_message("Task timed out") == "Task timed out"
    assert error_message(None) == ""


@pytest.mark.parametrize("event", [{}, {"outcome": "lost", "state": {}}, {"outcome": "review", "state": "x"}])
def test_unknown_outcome_is_invalid_input(s3, event):
    with pytest.raises(InvalidInput):
        record_outcome(event, s3, CONFIG, NOW)
