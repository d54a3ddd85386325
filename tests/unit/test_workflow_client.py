"""The client's reading of execution end states, names and inputs (no AWS)."""
import json
import re

import pytest

from scones.local.workflow_client import (
    WorkflowError,
    execution_name,
    expand_inputs,
    outcome_from_execution,
    parse_s3_uri,
)

ARN = "arn:aws:states:us-east-1:123456789012:execution:wf:x"


def test_succeeded_classified_reads_label_and_confidence():
    output = {"outcome": "classified", "label": "bicycle", "confidence": 0.99, "inferences": [0.99, 0.01]}
    outcome = outcome_from_execution(
        "a.png", {"executionArn": ARN, "status": "SUCCEEDED", "output": json.dumps(output)}
    )
    assert (outcome.outcome, outcome.label, outcome.confidence, outcome.reason) == (
        "classified", "bicycle", 0.99, None
    )


def test_succeeded_review_keeps_the_reason():
    output = {"outcome": "review", "label": "motorcycle", "confidence": 0.6, "reason": "below 0.93"}
    outcome = outcome_from_execution(
        "a.png", {"executionArn": ARN, "status": "SUCCEEDED", "output": json.dumps(output)}
    )
    assert (outcome.outcome, outcome.reason) == ("review", "below 0.93")


def test_failed_execution_names_the_error_and_the_lambda_message():
    cause = json.dumps({"errorType": "ImageNotFound", "errorMessage": "no object s3://b/k: NoSuchKey"})
    outcome = outcome_from_execution(
        "k", {"executionArn": ARN, "status": "FAILED", "error": "ImageNotFound", "cause": cause}
    )
    assert outcome.outcome == "failed"
    assert outcome.reason == "ImageNotFound: no object s3://b/k: NoSuchKey"


def test_output_without_a_known_outcome_is_a_failure_not_a_success():
    outcome = outcome_from_execution(
        "k", {"executionArn": ARN, "status": "SUCCEEDED", "output": json.dumps({"x": 1})}
    )
    assert outcome.outcome == "failed"


def test_execution_names_are_valid_unique_and_say_which_image():
    names = {execution_name("test/bicycle_s_000513 (copy).png") for _ in range(100)}
    assert len(names) == 100
    for name in names:
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,80}", name)
        assert name.startswith("bicycle_s_000513--copy-")


def test_expand_inputs_walks_directories_and_rejects_missing(tmp_path):
    (tmp_path / "b.png").write_bytes(b"x")
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    assert expand_inputs([str(tmp_path), "s3://b/k.png"]) == [
        str(tmp_path / "a.jpg"), str(tmp_path / "b.png"), "s3://b/k.png"
    ]
    with pytest.raises(WorkflowError, match="no such file"):
        expand_inputs([str(tmp_path / "missing.png")])


def test_parse_s3_uri():
    assert parse_s3_uri("s3://bucket/a/b.png") == ("bucket", "a/b.png")
    with pytest.raises(WorkflowError):
        parse_s3_uri("s3://bucket")
