"""Parsing SageMaker data-capture lines, --since, and S3 URIs (no network)."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest

from scones.model.monitor.capture_reader import (
    InvalidCaptureUri,
    InvalidSince,
    MalformedCaptureLine,
    parse_capture_line,
    parse_s3_uri,
    parse_since,
)
from scones.model.server.capture import capture_record

NOW = datetime(2026, 3, 1, 12, 30, tzinfo=timezone.utc)


def capture_line(probabilities, body=b"\x89PNG fake", when="2026-03-01T12:00:01.250Z", output_encoding="JSON") -> str:
    """One record exactly as DESIGN.md (and SageMaker Model Monitor) lays it out."""
    output = json.dumps(probabilities)
    if output_encoding == "BASE64":
        output = base64.b64encode(output.encode()).decode()
    return json.dumps({
        "captureData": {
            "endpointInput": {"observedContentType": "image/png", "mode": "INPUT",
                              "data": base64.b64encode(body).decode(), "encoding": "BASE64"},
            "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                               "data": output, "encoding": output_encoding},
        },
        "eventMetadata": {"eventId": "e-1", "inferenceTime": when},
        "eventVersion": "0",
    })


def test_parses_a_design_format_line():
    record = parse_capture_line(capture_line([0.25, 0.75], body=b"abc"), source_key="k.jsonl")
    assert record.probabilities == (0.25, 0.75)
    assert record.max_confidence == 0.75 and record.predicted_index == 1
    assert record.input_data == b"abc" and record.input_content_type == "image/png"
    assert record.inference_time == datetime(2026, 3, 1, 12, 0, 1, 250000, tzinfo=timezone.utc)
    assert record.event_id == "e-1" and record.source_key == "k.jsonl"


def test_parses_base64_encoded_output_and_a_batch_of_one():
    assert parse_capture_line(capture_line([0.9, 0.1], output_encoding="BASE64")).probabilities == (0.9, 0.1)
    assert parse_capture_line(capture_line([[0.2, 0.8]])).probabilities == (0.2, 0.8)


def test_parses_what_the_model_server_writes():
    line = json.dumps(capture_record(b"img", "image/png", b"[0.98, 0.02]", "application/json",
                                     event_id="x", inference_id=None, inference_time=NOW))
    record = parse_capture_line(line)
    assert record.probabilities == (0.98, 0.02) and record.inference_time == NOW and record.input_data == b"img"


@pytest.mark.parametrize("line, reason", [
    ("{not json", "not JSON"),
    (json.dumps({"eventMetadata": {"inferenceTime": "2026-03-01T00:00:00Z"}}), "captureData"),
    (capture_line("oops"), "not a list"),
    (capture_line([]), "not a list"),
    (capture_line(["a", "b"]), "non-numeric"),
    (capture_line([0.5, 0.5], when="yesterday"), "ValueError"),
    (capture_line([0.5, 0.5]).replace('"data": "', '"data": "!!', 1), "Error"),
    ("[1, 2]", "TypeError"),
])
def test_malformed_lines_name_the_problem(line, reason):
    with pytest.raises(MalformedCaptureLine, match=reason):
        parse_capture_line(line)


def test_since_accepts_durations_and_iso_times():
    assert parse_since("90m", now=NOW) == NOW - timedelta(minutes=90)
    assert parse_since("2d", now=NOW) == NOW - timedelta(days=2)
    assert parse_since("2026-02-01T00:00:00") == datetime(2026, 2, 1, tzinfo=timezone.utc)
    assert parse_since("2026-02-01T00:00:00+01:00").utcoffset() == timedelta(hours=1)
    assert parse_since(None) is None and parse_since(" ") is None
    with pytest.raises(InvalidSince, match="30m"):
        parse_since("last tuesday")


def test_s3_uris():
    assert parse_s3_uri("s3://my-bucket/datacapture/ep/") == ("my-bucket", "datacapture/ep/")
    assert parse_s3_uri("s3://my-bucket") == ("my-bucket", "")
    for bad in ("my-bucket/prefix", "http://x/y", "s3://", "s3://Bad_Bucket/x"):
        with pytest.raises(InvalidCaptureUri):
            parse_s3_uri(bad)
