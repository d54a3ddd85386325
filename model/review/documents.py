"""The label document: one JSON object per reviewed photo at `labels/{item}.json`.

Its shape follows Amazon A2I's output.json (`humanAnswers`, `inputContent`), so tools written
for A2I output read it with few changes; unlike A2I, every reviewer's answer to the same photo
is kept in one document, and the last one counts for training.

    {"humanLoopName": ITEM, "flowDefinitionArn": null,
     "inputContent": {"image": "s3://bucket/key", "s3_bucket", "s3_key", "review_record": "s3://bucket/review/ITEM.json",
                      "executionArn": ARN, "modelAnswer": {"label", "confidence", "probabilities": {class: p}},
                      "reason", "recordedAt"},
     "humanAnswers": [{"answerContent": {"label": "bicycle"|...|"unsure"}, "workerId": "ana",
                       "acceptanceTime": ISO, "submissionTime": ISO, "timeSpentInSeconds": 3.2}]}
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any

REVIEW_PREFIX = "review/"
LABELS_PREFIX = "labels/"
UNSURE = "unsure"  # "neither / unsure": kept as an answer, never used as a training label
# Step Functions execution names (the review record's file name) use a narrower set than this.
ITEM_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


class InvalidAnswer(ValueError):
    """An answer that names no known class, or an item that is not in the review queue."""


def item_id_of(key: str, prefix: str) -> str | None:
    """review/ITEM.json or labels/ITEM.json → ITEM; None for any other key (never served)."""
    if not key.startswith(prefix) or not key.endswith(".json"):
        return None
    item = key[len(prefix):-len(".json")]
    return item if ITEM_ID.fullmatch(item) else None


def label_document(item: str, record: dict, bucket: str) -> dict:
    """A new document (no answers yet) from the review record that `record_outcome` wrote."""
    labels, probabilities = record.get("labels") or [], record.get("inferences") or []
    return {
        "humanLoopName": item,
        "flowDefinitionArn": None,
        "inputContent": {
            "image": record.get("image"),
            "s3_bucket": record.get("s3_bucket"),
            "s3_key": record.get("s3_key"),
            "review_record": f"s3://{bucket}/{REVIEW_PREFIX}{item}.json",
            "executionArn": record.get("execution_id"),
            "modelAnswer": {
                "label": record.get("label"),
                "confidence": record.get("confidence"),
                "probabilities": dict(zip(labels, probabilities)),
            },
            "reason": record.get("reason"),
            "recordedAt": record.get("recorded_at"),
        },
        "humanAnswers": [],
    }


def human_answer(label: str, reviewer: str, shown_at: datetime, now: datetime) -> dict:
    return {
        "answerContent": {"label": label},
        "workerId": reviewer,
        "acceptanceTime": shown_at.isoformat(),
        "submissionTime": now.isoformat(),
        "timeSpentInSeconds": round(max((now - shown_at).total_seconds(), 0.0), 3),
    }


def answered_labels(document: dict) -> list[str]:
    """Every answer's label, oldest first."""
    answers = document.get("humanAnswers") or []
    return [str(a.get("answerContent", {}).get("label")) for a in answers if isinstance(a, dict)]


def final_label(document: dict) -> str | None:
    """The label training uses: the last answer's (which may be `unsure`); None when unanswered."""
    labels = answered_labels(document)
    return labels[-1] if labels else None


def reviewers_disagree(document: dict) -> bool:
    return len(set(answered_labels(document))) > 1


def model_label(document: dict) -> str | None:
    return (document.get("inputContent", {}).get("modelAnswer") or {}).get("label")


def check_label(label: Any, class_names: list[str]) -> str:
    if label == UNSURE or label in class_names:
        return str(label)
    raise InvalidAnswer(f"label must be one of {[*class_names, UNSURE]}, got {label!r}")
