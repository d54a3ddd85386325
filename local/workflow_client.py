"""Run images through the deployed state machine and read back one outcome per image.

The client side of the workflow contract: upload, start one named execution per image,
wait, and turn each execution's end state into classified / review / failed.
"""
from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from scones.model import config

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
OUTCOMES = ("classified", "review", "failed")
TERMINAL_STATUSES = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
UPLOAD_PREFIX = "uploads/"
FIRST_POLL_S = 0.005  # an embedded-stack execution takes tens of ms: look early and often...
POLL_BACKOFF = 0.2  # ...then wait a fifth of the time waited so far (the answer comes at most ~20 % late), up to poll_s


class WorkflowError(Exception):
    """The workflow could not be run at all (bad input, no stack): nothing was started."""


@dataclass(frozen=True)
class ImageRef:
    """One image as the user named it, and where the workflow reads it."""

    image: str
    bucket: str
    key: str


@dataclass(frozen=True)
class Outcome:
    image: str
    outcome: str  # one of OUTCOMES
    label: str | None
    confidence: float | None
    reason: str | None
    execution_arn: str

    def to_json(self) -> dict:
        return asdict(self)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    try:
        return config.parse_s3_uri(uri)
    except config.InvalidS3Uri as error:
        raise WorkflowError(str(error)) from error


def expand_inputs(inputs: Iterable[str]) -> list[str]:
    """Local directories become the images inside them; files and S3 URIs pass through."""
    expanded: list[str] = []
    for item in inputs:
        path = Path(item)
        if item.startswith("s3://"):
            expanded.append(item)
        elif path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise WorkflowError(f"no {'/'.join(IMAGE_SUFFIXES)} images under {path}")
            expanded.extend(str(p) for p in found)
        elif path.is_file():
            expanded.append(str(path))
        else:
            raise WorkflowError(f"no such file, directory or S3 URI: {item!r}")
    return expanded


def stage_images(s3, bucket: str, inputs: Sequence[str], prefix: str = UPLOAD_PREFIX) -> list[ImageRef]:
    """Upload local files under `prefix` (by run); S3 URIs are used in place.

    Not under incoming/: a put there starts an execution by itself (the stack's S3 trigger), and
    these images get their explicit executions here."""
    run_id = uuid.uuid4().hex[:8]
    refs = []
    for item in inputs:
        if item.startswith("s3://"):
            refs.append(ImageRef(item, *parse_s3_uri(item)))
            continue
        key = f"{prefix}{run_id}/{Path(item).name}"
        s3.upload_file(item, bucket, key)
        refs.append(ImageRef(item, bucket, key))
    return refs


def execution_name(key: str) -> str:
    """A unique, valid execution name (1-80 chars of [A-Za-z0-9-_]) that still says which image."""
    stem = re.sub(r"[^A-Za-z0-9_-]", "-", Path(key).stem)[:60]
    return f"{stem}-{uuid.uuid4().hex[:12]}"


def outcome_from_execution(image: str, execution: dict) -> Outcome:
    """Map DescribeExecution's answer onto the three outcomes of the workflow contract."""
    arn = execution["executionArn"]
    status = execution["status"]
    if status == "SUCCEEDED":
        output = json.loads(execution.get("output") or "{}")
        kind = output.get("outcome")
        if kind not in ("classified", "review"):
            return Outcome(image, "failed", None, None, f"unexpected workflow output: {output}", arn)
        confidence = output.get("confidence")
        return Outcome(
            image,
            kind,
            output.get("label"),
            None if confidence is None else float(confidence),
            output.get("reason") if kind == "review" else None,
            arn,
        )
    error = execution.get("error") or status
    cause = execution.get("cause") or ""
    return Outcome(image, "failed", None, None, f"{error}: {_short_cause(cause)}".rstrip(": "), arn)


def _short_cause(cause: str) -> str:
    """A Lambda error's cause is its JSON error payload: keep the message only."""
    try:
        payload = json.loads(cause)
    except (TypeError, ValueError):
        return cause
    if isinstance(payload, dict):
        return str(payload.get("errorMessage") or payload.get("Cause") or payload)
    return cause


def run_images(
    stepfunctions,
    state_machine_arn: str,
    refs: Sequence[ImageRef],
    *,
    timeout_s: float = 300.0,
    poll_s: float = 0.25,
    on_done: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Start one execution per image, wait for all, return outcomes in input order.

    Polls DescribeExecution every FIRST_POLL_S at first, then after POLL_BACKOFF of the time waited
    so far, up to poll_s: a geometric back-off whose factor bounds how late an ending is seen.
    An execution still running at the deadline is reported as failed with that reason,
    so every image ends with exactly one outcome.
    """
    pending: dict[str, tuple[int, ImageRef]] = {}
    for index, ref in enumerate(refs):
        started = stepfunctions.start_execution(
            stateMachineArn=state_machine_arn,
            name=execution_name(ref.key),
            input=json.dumps({"s3_bucket": ref.bucket, "s3_key": ref.key}),
        )
        pending[started["executionArn"]] = (index, ref)

    results: list[Outcome | None] = [None] * len(refs)
    began = time.monotonic()
    deadline = began + timeout_s
    while pending:
        for arn in list(pending):
            execution = stepfunctions.describe_execution(executionArn=arn)
            if execution["status"] not in TERMINAL_STATUSES:
                continue
            index, ref = pending.pop(arn)
            outcome = outcome_from_execution(ref.image, execution)
            results[index] = outcome
            if on_done:
                on_done(outcome)
        if pending and time.monotonic() > deadline:
            for arn, (index, ref) in pending.items():
                outcome = Outcome(ref.image, "failed", None, None, f"still running after {timeout_s:.0f} s", arn)
                results[index] = outcome
                if on_done:
                    on_done(outcome)
            break
        if pending:
            waited = time.monotonic() - began
            time.sleep(min(max(FIRST_POLL_S, waited * POLL_BACKOFF), poll_s))
    return [r for r in results if r is not None]
