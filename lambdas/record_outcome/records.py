"""Write the review or failure record to the bucket, and shape the execution's final output.

The state machine calls this from its Catch paths with
`{"outcome": "review"|"failed", "execution_id", "execution_name", "state"}`, where `state` is
the failed step's input plus `failure` = {"Error", "Cause"} as Step Functions caught it.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ..common.config import FunctionConfig
from ..common.images import InvalidInput, s3_uri
from ..common.inferences import best_inference

INTERNAL_KEYS = ("failure", "image_data")


def error_message(cause: object) -> str:
    """The human part of a Step Functions Cause (a Lambda error's Cause is JSON text)."""
    if isinstance(cause, str):
        try:
            parsed = json.loads(cause)
        except ValueError:
            return cause
        if isinstance(parsed, dict) and "errorMessage" in parsed:
            return str(parsed["errorMessage"])
        return cause
    return "" if cause is None else json.dumps(cause)


def _put_json(s3: Any, bucket: str, key: str, record: dict) -> str:
    body = json.dumps(record, indent=2).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    return s3_uri(bucket, key)


def record_review(
    state: dict, execution_id: str, execution_name: str, s3: Any, config: FunctionConfig, now: datetime
) -> dict:
    label, confidence = best_inference(state.get("inferences"), state.get("labels"))
    reason = error_message(state.get("failure", {}).get("Cause"))
    record = {
        "execution_id": execution_id,
        "s3_bucket": state.get("s3_bucket"),
        "s3_key": state.get("s3_key"),
        "image": s3_uri(state.get("s3_bucket", ""), state.get("s3_key", "")),
        "inferences": state["inferences"],
        "labels": state["labels"],
        "label": label,
        "confidence": confidence,
        "threshold": config.threshold,
        "reason": reason,
        "recorded_at": now.isoformat(),
    }
    uri = _put_json(s3, config.require("bucket"), f"{config.review_prefix}{execution_name}.json", record)
    output = {k: v for k, v in state.items() if k not in INTERNAL_KEYS}
    return {**output, "outcome": "review", "label": label, "confidence": confidence,
            "reason": reason, "review_record": uri}


def record_failure(
    state: dict, execution_id: str, execution_name: str, s3: Any, config: FunctionConfig, now: datetime
) -> dict:
    failure = state.get("failure", {})
    error, cause = str(failure.get("Error", "Unknown")), error_message(failure.get("Cause"))
    record = {
        "execution_id": execution_id,
        "s3_bucket": state.get("s3_bucket"),
        "s3_key": state.get("s3_key"),
        "error": error,
        "cause": cause,
        "recorded_at": now.isoformat(),
    }
    uri = _put_json(s3, config.require("bucket"), f"{config.failed_prefix}{execution_name}.json", record)
    return {"outcome": "failed", "error": error, "cause": cause, "failure_record": uri}


def record_outcome(event: dict, s3: Any, config: FunctionConfig, now: datetime) -> dict:
    """Dispatch on event["outcome"]; the returned dict is what the execution ends with."""
    recorders = {"review": record_review, "failed": record_failure}
    outcome, state = event.get("outcome"), event.get("state")
    if outcome not in recorders or not isinstance(state, dict):
        raise InvalidInput(f"record_outcome needs outcome review|failed and a state, got {sorted(event)}")
    execution_id, execution_name = str(event.get("execution_id")), str(event.get("execution_name"))
    return recorders[outcome](state, execution_id, execution_name, s3, config, now)
