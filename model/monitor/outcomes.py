"""Workflow outcomes: classified / review / failed, from the executions and the S3 records.

Every execution ends in exactly one outcome (contract C): SUCCEEDED with output
"outcome" classified or review, or FAILED with a named error. The review/ and failed/
records in the bucket are read too, so a report still says something when only the
bucket is reachable, and so the two sources can be checked against each other.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from scones.model.review.summary import ReviewSummary, summarize_reviews

OUTCOMES = ("classified", "review", "failed")
RECORD_PREFIXES = {"review": "review/", "failed": "failed/"}


@dataclass
class OutcomeSummary:
    state_machine_arn: str | None
    bucket: str | None
    executions: int = 0
    counts: Counter = field(default_factory=Counter)  # classified / review / failed / running
    failure_reasons: Counter = field(default_factory=Counter)  # error name → executions
    review_reasons: Counter = field(default_factory=Counter)
    records: Counter = field(default_factory=Counter)  # review / failed → records in the bucket
    notes: list[str] = field(default_factory=list)
    reviews: ReviewSummary | None = None  # the human review of the review/ records (labels/)

    @property
    def from_executions(self) -> bool:
        return self.state_machine_arn is not None

    def count(self, outcome: str) -> int | None:
        """None when unknown: "classified" leaves no record, so it needs the executions."""
        if self.from_executions:
            return self.counts[outcome]
        return self.records[outcome] if outcome in RECORD_PREFIXES and self.bucket else None


def classify_execution(description: dict) -> tuple[str, str | None]:
    """describe_execution's answer → (outcome, reason); outcome "running" while not finished."""
    status = description["status"]
    if status == "RUNNING" or status == "PENDING_REDRIVE":
        return "running", None
    if status == "SUCCEEDED":
        try:
            output = json.loads(description.get("output") or "{}")
        except json.JSONDecodeError:
            return "failed", "UnreadableOutput"
        outcome = output.get("outcome") if isinstance(output, dict) else None
        if outcome == "review":
            return "review", str(output.get("reason") or "review")
        if outcome == "classified":
            return "classified", None
        return "failed", "UnknownOutcome"
    # FAILED carries the named error; TIMED_OUT and ABORTED are failures named by their status.
    return "failed", description.get("error") or status


def summarize_executions(sfn, summary: OutcomeSummary, since: datetime | None = None) -> None:
    paginator = sfn.get_paginator("list_executions")
    for page in paginator.paginate(stateMachineArn=summary.state_machine_arn):
        for item in page.get("executions", []):
            if since is not None and item["startDate"] < since:
                continue
            outcome, reason = classify_execution(sfn.describe_execution(executionArn=item["executionArn"]))
            summary.executions += 1
            summary.counts[outcome] += 1
            if outcome == "failed":
                summary.failure_reasons[reason] += 1
            elif outcome == "review":
                summary.review_reasons[reason] += 1


def summarize_records(s3, summary: OutcomeSummary, since: datetime | None = None) -> None:
    """Count the review/ and failed/ records; take reasons from them when executions are unknown."""
    for outcome, prefix in RECORD_PREFIXES.items():
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=summary.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                if since is not None and item["LastModified"] < since:
                    continue
                summary.records[outcome] += 1
                if summary.from_executions:
                    continue
                record = _read_record(s3, summary.bucket, item["Key"])
                if outcome == "failed":
                    summary.failure_reasons[str(record.get("error", "unknown"))] += 1
                else:
                    summary.review_reasons[str(record.get("reason", "unknown"))] += 1


def _read_record(s3, bucket: str, key: str) -> dict:
    try:
        record = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        return record if isinstance(record, dict) else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}


def summarize_outcomes(
    session, state_machine_arn: str | None, bucket: str | None, since: datetime | None = None
) -> OutcomeSummary:
    """Outcomes since `since`; a source that cannot be reached is noted, not fatal."""
    from botocore.exceptions import BotoCoreError, ClientError

    summary = OutcomeSummary(state_machine_arn=state_machine_arn, bucket=bucket)
    if state_machine_arn:
        try:
            summarize_executions(session.client("stepfunctions"), summary, since)
        except (BotoCoreError, ClientError) as exc:
            summary.notes.append(f"executions of {state_machine_arn} unavailable: {exc}")
            summary.state_machine_arn = None
    if bucket:
        try:
            summarize_records(session.client("s3"), summary, since)
            summary.reviews = summarize_reviews(session.client("s3"), bucket)
        except (BotoCoreError, ClientError) as exc:
            summary.notes.append(f"records in s3://{bucket} unavailable: {exc}")
    if summary.from_executions and bucket:
        for outcome in RECORD_PREFIXES:
            if summary.records[outcome] != summary.counts[outcome]:
                summary.notes.append(
                    f"{summary.counts[outcome]} {outcome} execution(s) but {summary.records[outcome]} "
                    f"record(s) under s3://{bucket}/{RECORD_PREFIXES[outcome]}"
                )
    if not state_machine_arn and not bucket:
        summary.notes.append("no state machine or bucket given: outcomes not reported")
    return summary
