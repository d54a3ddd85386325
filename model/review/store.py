"""The review queue and its answers, in the stack's bucket, through any boto3 S3 client.

Least privilege: it lists and reads `review/` and `labels/`, reads only the images that review
records point to (and only in the same bucket), and writes or deletes only under `labels/`.
Answers are read-modify-write with S3 conditional writes (If-None-Match / If-Match), so two
reviewers answering the same photo at once both land in its document.
"""
from __future__ import annotations

import io
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError
from PIL import Image, UnidentifiedImageError

from .documents import (
    LABELS_PREFIX, REVIEW_PREFIX, InvalidAnswer, check_label, human_answer, item_id_of,
    label_document,
)

WRITE_ATTEMPTS = 5
READ_THREADS = 8  # review records read at once when the queue is first listed
CONFLICTS = ("PreconditionFailed", "ConditionalRequestConflict")


class ReviewError(Exception):
    """Base of the review store's named errors."""


class ItemNotFound(ReviewError):
    """No review record for this item."""


class ImageUnavailable(ReviewError):
    """The record's image is missing, not an image, or outside the stack's bucket."""


class ConcurrentAnswers(ReviewError):
    """The label document kept changing under us."""


@dataclass(frozen=True)
class QueueState:
    waiting: list[tuple[str, datetime]]  # (item, when its review record was written), oldest first
    total: int  # review records
    answered: int  # of them, with a label document


class ReviewStore:
    def __init__(self, s3: Any, bucket: str):
        self.s3, self.bucket = s3, bucket
        self._records: dict[str, dict] = {}  # review records never change once written: read each once

    def listing(self, prefix: str) -> dict[str, datetime]:
        found = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for entry in page.get("Contents", []):
                item = item_id_of(entry["Key"], prefix)
                if item is not None:
                    found[item] = entry["LastModified"]
        return found

    def queue(self, second_opinion_by: str | None = None) -> QueueState:
        """Unanswered items oldest first; with `second_opinion_by`, those this reviewer has not answered."""
        records, labelled = self.listing(REVIEW_PREFIX), self.listing(LABELS_PREFIX)
        answered = {item for item in labelled if item in records}
        if second_opinion_by is not None:
            done = {item for item in answered if second_opinion_by in self._reviewers(item)}
            pending = sorted(set(records) - done)
        else:
            pending = sorted(set(records) - answered)
        with ThreadPoolExecutor(READ_THREADS) as pool:
            recorded = dict(zip(pending, pool.map(self._recorded_at, pending, [records[i] for i in pending])))
        waiting = sorted(recorded.items(), key=lambda pair: (pair[1], pair[0]))
        return QueueState(waiting, len(records), len(answered))

    def _recorded_at(self, item: str, listed: datetime) -> datetime:
        """The record's own time (microseconds), else the listing's (S3 keeps whole seconds)."""
        try:
            recorded = datetime.fromisoformat(str(self.record(item).get("recorded_at")))
        except (ItemNotFound, ValueError):
            return listed
        return recorded if recorded.tzinfo else recorded.replace(tzinfo=timezone.utc)

    def _reviewers(self, item: str) -> set[str]:
        document, _ = self.label_document(item)
        return {str(a.get("workerId")) for a in (document or {}).get("humanAnswers", [])}

    def _read_json(self, key: str) -> tuple[dict | None, str | None]:
        """(document, ETag), or (None, None) when there is no such object."""
        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return None, None
            raise
        try:
            document = json.loads(response["Body"].read())
        except (json.JSONDecodeError, UnicodeDecodeError):
            document = None
        return (document if isinstance(document, dict) else {}), response["ETag"]

    def record(self, item: str) -> dict:
        """The review record `record_outcome` wrote for this item."""
        if item in self._records:
            return self._records[item]
        if item_id_of(f"{REVIEW_PREFIX}{item}.json", REVIEW_PREFIX) is None:
            raise ItemNotFound(f"not a review item name: {item!r}")
        record, _ = self._read_json(f"{REVIEW_PREFIX}{item}.json")
        if record is None:
            raise ItemNotFound(f"no review record s3://{self.bucket}/{REVIEW_PREFIX}{item}.json")
        self._records[item] = record
        return record

    def label_document(self, item: str) -> tuple[dict | None, str | None]:
        return self._read_json(f"{LABELS_PREFIX}{item}.json")

    def image_png(self, item: str) -> bytes:
        """The record's image re-encoded as PNG: the page never receives bytes it did not make itself."""
        record = self.record(item)
        bucket, key = record.get("s3_bucket"), record.get("s3_key")
        if bucket != self.bucket or not isinstance(key, str):
            raise ImageUnavailable(f"{item}: image {record.get('image')!r} is not in s3://{self.bucket}")
        try:
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            with Image.open(io.BytesIO(body)) as image:
                buffer = io.BytesIO()
                image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB").save(buffer, format="PNG")
        except ClientError as error:
            raise ImageUnavailable(f"{item}: s3://{bucket}/{key}: {error.response['Error']['Code']}") from error
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
            raise ImageUnavailable(f"{item}: s3://{bucket}/{key} is not a readable image ({error})") from error
        return buffer.getvalue()

    def _update(self, item: str, change: Callable[[dict | None], dict | None]) -> dict | None:
        """Apply `change` to the label document with conditional writes; None from `change` deletes it."""
        key = f"{LABELS_PREFIX}{item}.json"
        for _ in range(WRITE_ATTEMPTS):
            current, etag = self._read_json(key)
            updated = change(current)
            try:
                if updated is None:
                    if etag is not None:
                        self.s3.delete_object(Bucket=self.bucket, Key=key)
                    return None
                condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
                self.s3.put_object(Bucket=self.bucket, Key=key, Body=json.dumps(updated, indent=2).encode(),
                                   ContentType="application/json", **condition)
                return updated
            except ClientError as error:
                if error.response["Error"]["Code"] not in CONFLICTS:
                    raise
        raise ConcurrentAnswers(f"s3://{self.bucket}/{key} changed {WRITE_ATTEMPTS} times while answering")

    def answer(self, item: str, label: str, reviewer: str, shown_at: datetime, now: datetime) -> dict:
        """Append this reviewer's answer to the item's document (created on the first answer)."""
        record = self.record(item)
        label = check_label(label, list(record.get("labels") or []))
        answer = human_answer(label, reviewer, shown_at, now)

        def add(document: dict | None) -> dict:
            document = document if document and "humanAnswers" in document else label_document(item, record, self.bucket)
            document["humanAnswers"].append(answer)
            return document

        document = self._update(item, add)
        assert document is not None
        return document

    def undo(self, item: str, reviewer: str, submission_time: str) -> dict | None:
        """Remove this reviewer's answer given at `submission_time`; the document goes when it has none left."""

        def drop(document: dict | None) -> dict | None:
            answers = (document or {}).get("humanAnswers") or []
            kept = [a for a in answers if not (a.get("workerId") == reviewer and a.get("submissionTime") == submission_time)]
            if len(kept) == len(answers):
                raise InvalidAnswer(f"{item}: no answer by {reviewer!r} at {submission_time} to undo")
            return {**(document or {}), "humanAnswers": kept} if kept else None

        return self._update(item, drop)
