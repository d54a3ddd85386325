"""Data capture as SageMaker Model Monitor writes it: sampled JSON Lines records in S3.

Invocations are buffered in memory as they are (bytes, not yet base64 or JSON) and encoded and
written by a background thread (when the buffer is big enough, every few seconds, and at
shutdown), so capturing costs the event loop one list append per response. Keys follow
SageMaker's layout, s3://bucket/prefix/{endpoint}/{variant}/yyyy/mm/dd/hh/mm-ss-ms-{uuid}.jsonl,
grouped by the hour of each record's inference time. S3 goes through boto3, so
AWS_ENDPOINT_URL retargets it at moto or LocalStack.
"""
from __future__ import annotations

import base64
import json
import logging
import random
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlparse

import boto3

log = logging.getLogger("scones.model.server.capture")


class InvalidCaptureDestination(ValueError):
    """The capture URI is not s3://bucket[/prefix], or the percentage is outside 0–100."""


@dataclass(frozen=True)
class CaptureDestination:
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, uri: str) -> CaptureDestination:
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise InvalidCaptureDestination(f"capture destination must look like s3://bucket/prefix, got {uri!r}")
        return cls(bucket=parsed.netloc, prefix=parsed.path.strip("/"))


def capture_record(
    input_body: bytes, input_content_type: str, output_body: bytes, output_content_type: str,
    event_id: str, inference_id: str | None, inference_time: datetime,
) -> dict[str, Any]:
    """One line of a capture file, field for field as SageMaker writes it."""
    metadata: dict[str, str] = {
        "eventId": event_id,
        "inferenceTime": inference_time.strftime("%Y-%m-%dT%H:%M:%S.") + f"{inference_time.microsecond // 1000:03d}Z",
    }
    if inference_id:
        metadata["inferenceId"] = inference_id
    return {
        "captureData": {
            "endpointInput": {
                "observedContentType": input_content_type,
                "mode": "INPUT",
                "data": base64.b64encode(input_body).decode("ascii"),
                "encoding": "BASE64",
            },
            "endpointOutput": {
                "observedContentType": output_content_type,
                "mode": "OUTPUT",
                "data": output_body.decode("utf-8"),
                "encoding": "JSON",
            },
        },
        "eventMetadata": metadata,
        "eventVersion": "0",
    }


@dataclass(frozen=True)
class _Captured:
    """One sampled invocation, kept raw until the writer thread encodes it."""

    when: datetime
    input_body: bytes
    input_content_type: str
    output_body: bytes
    output_content_type: str
    inference_id: str | None

    def line(self) -> str:
        return json.dumps(capture_record(
            self.input_body, self.input_content_type, self.output_body, self.output_content_type,
            event_id=self.inference_id or str(uuid.uuid4()), inference_id=self.inference_id, inference_time=self.when,
        ))  # fmt: skip


class DataCapture:
    """Samples invocations and writes them to S3 in the background."""

    def __init__(
        self, destination: CaptureDestination, endpoint_name: str, variant: str = "AllTraffic",
        percent: float = 100.0, flush_interval_s: float = 2.0, flush_at_records: int = 500,
        s3_client: Any = None,
    ) -> None:
        if not 0 <= percent <= 100:
            raise InvalidCaptureDestination(f"capture percentage must be between 0 and 100, got {percent}")
        self.destination = destination
        self.endpoint_name = endpoint_name
        self.variant = variant
        self.percent = percent
        self.flush_interval_s = flush_interval_s
        self.flush_at_records = flush_at_records
        self._s3 = s3_client  # made at the first write: boto3.client costs ~0.2 s of CPU the server's start needn't wait for
        self._buffer: list[_Captured] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._flush_forever, name="data-capture", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Flush what is buffered and stop the writer."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def sampled(self) -> bool:
        return self.percent > 0 and random.uniform(0, 100) < self.percent

    def record(
        self, input_body: bytes, input_content_type: str, output_body: bytes, output_content_type: str,
        inference_id: str | None = None,
    ) -> None:
        """Buffer one invocation if it is sampled; encoding waits for the writer thread."""
        if not self.sampled():
            return
        captured = _Captured(datetime.now(timezone.utc), input_body, input_content_type, output_body,
                             output_content_type, inference_id)  # fmt: skip
        with self._lock:
            self._buffer.append(captured)
            full = len(self._buffer) >= self.flush_at_records
        if full:
            self._wake.set()

    def flush(self) -> int:
        """Write the buffered records, one object per hour they fall in; returns how many were written."""
        with self._lock:
            pending, self._buffer = self._buffer, []
        by_hour: dict[str, list[tuple[datetime, str]]] = {}
        for captured in pending:
            by_hour.setdefault(captured.when.strftime("%Y/%m/%d/%H"), []).append((captured.when, captured.line()))
        written = 0
        for hour, records in by_hour.items():
            key = self.object_key(hour, records[0][0])
            body = "".join(line + "\n" for _, line in records).encode("utf-8")
            try:
                if self._s3 is None:  # only the writer thread (or stop's final flush after it) gets here
                    self._s3 = boto3.client("s3")
                self._s3.put_object(Bucket=self.destination.bucket, Key=key, Body=body, ContentType="application/jsonl")
                written += len(records)
            except Exception as error:  # capture must never take the endpoint down
                log.error("data capture: could not write %d records to s3://%s/%s: %s",
                          len(records), self.destination.bucket, key, error)
        return written

    def object_key(self, hour: str, first: datetime) -> str:
        name = f"{first:%M-%S}-{first.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
        parts = [self.destination.prefix, self.endpoint_name, self.variant, hour, name]
        return "/".join(part for part in parts if part)

    def _flush_forever(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            self.flush()
        self.flush()
