"""Read SageMaker data capture (JSON Lines in S3) through boto3, locally or on AWS.

SageMaker writes one record per sampled request under
s3://bucket/prefix/endpoint/variant/yyyy/mm/dd/hh/*.jsonl. A bad line must not hide
every good one, so malformed lines are counted (with a few examples) and skipped.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from scones.model import config

HOUR_PARTITION = re.compile(r"/(\d{4})/(\d{2})/(\d{2})/(\d{2})/[^/]*$")
RELATIVE_SINCE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_MALFORMED_EXAMPLES = 5


class MonitorError(Exception):
    """Base of the monitor's named errors: the report cannot be made as asked."""


class InvalidCaptureUri(MonitorError, ValueError):
    """The capture location is not an s3://bucket/prefix URI."""


class InvalidSince(MonitorError, ValueError):
    """--since is neither a duration (30m, 24h, 7d) nor an ISO 8601 time."""


class MalformedCaptureLine(ValueError):
    """One capture line is not a SageMaker capture record with a probability list."""


@dataclass(frozen=True)
class CaptureRecord:
    """One captured request: what came in, what the model answered, and when."""

    event_id: str
    inference_time: datetime
    input_content_type: str
    input_data: bytes  # the request body (decoded from BASE64 when the capture encoded it)
    probabilities: tuple[float, ...]
    source_key: str

    @property
    def max_confidence(self) -> float:
        return max(self.probabilities)

    @property
    def predicted_index(self) -> int:
        return self.probabilities.index(self.max_confidence)


@dataclass
class CaptureReadResult:
    uri: str
    records: list[CaptureRecord] = field(default_factory=list)
    objects_read: int = 0
    malformed_lines: int = 0
    malformed_examples: list[str] = field(default_factory=list)
    skipped_before_since: int = 0

    def add_malformed(self, where: str, reason: str) -> None:
        self.malformed_lines += 1
        if len(self.malformed_examples) < MAX_MALFORMED_EXAMPLES:
            self.malformed_examples.append(f"{where}: {reason}")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """s3://bucket/prefix → (bucket, "prefix/") ; the prefix may be empty."""
    try:
        bucket, prefix = config.parse_s3_uri(uri, key_required=False)
    except config.InvalidS3Uri as error:
        raise InvalidCaptureUri(str(error)) from error
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """A duration back from now ("90m", "24h", "7d") or an ISO 8601 time; naive times are UTC."""
    if text is None or not text.strip():
        return None
    now = now or datetime.now(timezone.utc)
    relative = RELATIVE_SINCE.fullmatch(text.strip().lower())
    if relative:
        return now - timedelta(seconds=float(relative.group(1)) * UNIT_SECONDS[relative.group(2)])
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidSince(f"--since {text!r}: use a duration like 30m, 24h, 7d or an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def parse_inference_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _decode_output(output: dict) -> tuple[float, ...]:
    data, encoding = output["data"], str(output.get("encoding", "JSON")).upper()
    if encoding == "BASE64":
        data = base64.b64decode(data, validate=True).decode("utf-8")
    values = json.loads(data) if isinstance(data, str) else data
    if isinstance(values, list) and len(values) == 1 and isinstance(values[0], list):
        values = values[0]  # a batch of one, [[p0, p1]]
    if not isinstance(values, list) or not values:
        raise MalformedCaptureLine("endpointOutput is not a list of probabilities")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise MalformedCaptureLine("endpointOutput holds non-numeric values")
    return tuple(float(v) for v in values)


def _decode_input(endpoint_input: dict) -> bytes:
    data = endpoint_input.get("data", "")
    if str(endpoint_input.get("encoding", "BASE64")).upper() == "BASE64":
        return base64.b64decode(data, validate=True)
    return str(data).encode("utf-8")


def parse_capture_line(line: str, source_key: str = "") -> CaptureRecord:
    """One JSON Lines record → CaptureRecord; MalformedCaptureLine says what was wrong."""
    try:
        record = json.loads(line)
        capture = record["captureData"]
        metadata = record["eventMetadata"]
        endpoint_input = capture.get("endpointInput") or {}
        return CaptureRecord(
            event_id=str(metadata.get("eventId", "")),
            inference_time=parse_inference_time(metadata["inferenceTime"]),
            input_content_type=str(endpoint_input.get("observedContentType", "")),
            input_data=_decode_input(endpoint_input),
            probabilities=_decode_output(capture["endpointOutput"]),
            source_key=source_key,
        )
    except MalformedCaptureLine:
        raise
    except json.JSONDecodeError as exc:
        raise MalformedCaptureLine(f"not JSON ({exc.msg})") from None
    except KeyError as exc:
        raise MalformedCaptureLine(f"missing {exc.args[0]!r}") from None
    except (TypeError, AttributeError, ValueError, binascii.Error) as exc:
        raise MalformedCaptureLine(f"{type(exc).__name__}: {exc}") from None


def _partition_hour(key: str) -> datetime | None:
    match = HOUR_PARTITION.search("/" + key)
    if not match:
        return None
    year, month, day, hour = (int(g) for g in match.groups())
    try:
        return datetime(year, month, day, hour, tzinfo=timezone.utc)
    except ValueError:
        return None


def list_capture_objects(s3, uri: str, since: datetime | None = None) -> list[str]:
    """Keys of the capture files under `uri`, oldest partition first, skipping hours before `since`."""
    bucket, prefix = parse_s3_uri(uri)
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            hour = _partition_hour(item["Key"])
            if since is not None and hour is not None and hour + timedelta(hours=1) <= since:
                continue
            keys.append(item["Key"])
    return sorted(keys)


def read_capture_objects(
    s3, uri: str, keys: Iterable[str], since: datetime | None = None
) -> CaptureReadResult:
    """Parse the given capture files; records are sorted by inference time."""
    bucket, _ = parse_s3_uri(uri)
    result = CaptureReadResult(uri=uri)
    for key in keys:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8", errors="replace")
        result.objects_read += 1
        for number, line in _numbered_lines(body):
            try:
                record = parse_capture_line(line, source_key=key)
            except MalformedCaptureLine as exc:
                result.add_malformed(f"{key}:{number}", str(exc))
                continue
            if since is not None and record.inference_time < since:
                result.skipped_before_since += 1
                continue
            result.records.append(record)
    result.records.sort(key=lambda r: r.inference_time)
    return result


def _numbered_lines(body: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(body.splitlines(), start=1):
        if line.strip():
            yield number, line


def read_capture(s3, uri: str, since: datetime | None = None) -> CaptureReadResult:
    """Every capture record under `uri` (an endpoint's prefix, optionally down to a variant)."""
    return read_capture_objects(s3, uri, list_capture_objects(s3, uri, since), since)
