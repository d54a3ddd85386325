"""Capture records and keys, field for field, without S3 (a stub client records the writes)."""
from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timezone

import pytest

from scones.model.server.capture import CaptureDestination, DataCapture, InvalidCaptureDestination, capture_record


class RecordingS3:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.puts: list[dict] = []

    def put_object(self, **kwargs) -> None:
        if self.fail:
            raise ConnectionError("S3 is down")
        self.puts.append(kwargs)


def test_a_record_has_sagemakers_fields() -> None:
    when = datetime(2026, 3, 4, 5, 6, 7, 891_234, tzinfo=timezone.utc)
    record = capture_record(b"\x89PNG", "image/png", b"[0.9, 0.1]", "application/json", "event-1", "inference-1", when)
    assert record == {
        "captureData": {
            "endpointInput": {"observedContentType": "image/png", "mode": "INPUT",
                              "data": base64.b64encode(b"\x89PNG").decode(), "encoding": "BASE64"},
            "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                               "data": "[0.9, 0.1]", "encoding": "JSON"},
        },
        "eventMetadata": {"eventId": "event-1", "inferenceTime": "2026-03-04T05:06:07.891Z", "inferenceId": "inference-1"},
        "eventVersion": "0",
    }


def test_flush_writes_jsonl_under_the_endpoint_variant_and_hour() -> None:
    s3 = RecordingS3()
    capture = DataCapture(CaptureDestination.parse("s3://bucket/some/prefix"), "my-endpoint", s3_client=s3)
    capture.record(b"a", "image/png", b"[1.0]", "application/json", inference_id="id-1")
    capture.record(b"b", "image/png", b"[0.5]", "application/json")
    assert capture.flush() == 2
    [put] = s3.puts
    assert put["Bucket"] == "bucket"
    assert re.fullmatch(r"some/prefix/my-endpoint/AllTraffic/\d{4}/\d{2}/\d{2}/\d{2}/\d{2}-\d{2}-\d{3}-[0-9a-f-]{36}\.jsonl", put["Key"])
    lines = [json.loads(line) for line in put["Body"].decode().splitlines()]
    assert lines[0]["eventMetadata"]["eventId"] == "id-1"
    assert re.fullmatch(r"[0-9a-f-]{36}", lines[1]["eventMetadata"]["eventId"])
    assert capture.flush() == 0 and len(s3.puts) == 1


def test_zero_percent_samples_nothing_and_a_failed_write_is_logged_not_raised(caplog) -> None:
    s3 = RecordingS3()
    capture = DataCapture(CaptureDestination("bucket", ""), "ep", percent=0, s3_client=s3)
    capture.record(b"a", "image/png", b"[1.0]", "application/json")
    assert capture.flush() == 0 and s3.puts == []

    failing = DataCapture(CaptureDestination("bucket", ""), "ep", s3_client=RecordingS3(fail=True))
    failing.record(b"a", "image/png", b"[1.0]", "application/json")
    assert failing.flush() == 0
    assert "S3 is down" in caplog.text


def test_stop_flushes_what_is_buffered() -> None:
    s3 = RecordingS3()
    capture = DataCapture(CaptureDestination("bucket", "p"), "ep", flush_interval_s=60, s3_client=s3)
    capture.start()
    capture.record(b"a", "image/png", b"[1.0]", "application/json")
    capture.stop()
    assert len(s3.puts) == 1


@pytest.mark.parametrize("uri", ["bucket/prefix", "http://bucket/prefix", "s3:///prefix"])
def test_bad_destinations_are_named_errors(uri: str) -> None:
    with pytest.raises(InvalidCaptureDestination):
        CaptureDestination.parse(uri)


def test_percentages_outside_0_to_100_are_refused() -> None:
    with pytest.raises(InvalidCaptureDestination):
        DataCapture(CaptureDestination("b", ""), "ep", percent=101, s3_client=RecordingS3())


def test_the_s3_client_is_made_at_the_first_write_not_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from scones.model.server import capture as capture_module

    made: list[RecordingS3] = []

    def client(service: str) -> RecordingS3:
        assert service == "s3"
        made.append(RecordingS3())
        return made[-1]

    monkeypatch.setattr(capture_module.boto3, "client", client)
    capture = DataCapture(CaptureDestination("bucket", "p"), "ep")
    assert capture.flush() == 0 and made == []  # nothing to write: no client yet
    capture.record(b"in", "image/png", b"[1]", "application/json")
    capture.record(b"in", "image/png", b"[1]", "application/json")
    assert capture.flush() == 2 and len(made) == 1 and len(made[0].puts) == 1
    capture.record(b"in", "image/png", b"[1]", "application/json")
    assert capture.flush() == 1 and len(made) == 1 and len(made[0].puts) == 2
