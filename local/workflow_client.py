"""Run images through the deployed state machine and read back one outcome per image.

The client side of the workflow contract: upload, start one named execution per image,
wait, and turn each execution's end state into classified / review / failed.
"""
from __future__ import annotations

import json
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar, NamedTuple

from scones.model import config

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
OUTCOMES = ("classified", "review", "failed")
TERMINAL_STATUSES = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
UPLOAD_PREFIX = "uploads/"
FIRST_POLL_S = 0.005  # the shortest wait between polls: an embedded-stack execution takes tens of ms
FIRST_POLL_FRACTION = 0.8  # the first poll of an execution, as a share of the shortest recent one (PollSchedule)
POLL_BACKOFF = 0.2  # later polls wait a fifth of the time waited so far (an ending is seen at most ~20 % late), up to poll_s
RECENT_EXECUTIONS = 20
# A stack's first executions start its Lambda environments cold (hundreds of ms, then ~20 ms warm): the
# history sets the first poll only once it holds this many, so one cold execution does not delay the next.
MIN_OBSERVED = 3


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

    Each execution is polled (DescribeExecution) on its own schedule (`PollSchedule`). An execution
    still running at the deadline is reported as failed with that reason, so every image ends with
    exactly one outcome.
    """
    schedule = PollSchedule.for_state_machine(state_machine_arn, poll_s)
    pending: dict[str, _Waiting] = {}  # by execution ARN
    for index, ref in enumerate(refs):
        started = stepfunctions.start_execution(
            stateMachineArn=state_machine_arn,
            name=execution_name(ref.key),
            input=json.dumps({"s3_bucket": ref.bucket, "s3_key": ref.key}),
        )
        now = time.monotonic()
        pending[started["executionArn"]] = _Waiting(index, ref, now, now + schedule.first_delay())

    results: list[Outcome | None] = [None] * len(refs)
    deadline = time.monotonic() + timeout_s
    while pending:
        time.sleep(max(0.0, min(waiting.next_poll for waiting in pending.values()) - time.monotonic()))
        for arn, waiting in list(pending.items()):
            now = time.monotonic()
            if now < waiting.next_poll:
                continue
            execution = stepfunctions.describe_execution(executionArn=arn)
            if execution["status"] not in TERMINAL_STATUSES:
                pending[arn] = waiting._replace(next_poll=now + schedule.next_delay(now - waiting.started))
                continue
            del pending[arn]
            schedule.observe(execution)
            results[waiting.position] = outcome = outcome_from_execution(waiting.ref.image, execution)
            if on_done:
                on_done(outcome)
        if pending and time.monotonic() > deadline:
            for arn, waiting in pending.items():
                reason = f"still running after {timeout_s:.0f} s"
                results[waiting.position] = outcome = Outcome(waiting.ref.image, "failed", None, None, reason, arn)
                if on_done:
                    on_done(outcome)
            break
    return [r for r in results if r is not None]


class _Waiting(NamedTuple):
    """An execution run_images still waits for."""

    position: int  # its image's place in the input
    ref: ImageRef
    started: float  # time.monotonic() at StartExecution
    next_poll: float


class PollSchedule:
    """When to look at an execution again: first at a fraction of the shortest recent execution of the
    same state machine, once MIN_OBSERVED have ended (so a warm stream of executions takes one or two
    DescribeExecution calls each, not one every few ms), then after a fifth of the time waited so far
    (an ending is seen at most ~20 % late), never more than poll_s apart. Each DescribeExecution costs
    the service (and, on the embedded stack, the one moto process that also runs the executions) as much
    as a small request of the workflow itself; on AWS it also spends the account's DescribeExecution
    throttling budget."""

    _recent: ClassVar[dict[str, deque[float]]] = {}  # state machine ARN → recent durations (s), this process

    def __init__(self, durations: deque[float], poll_s: float):
        self.durations = durations
        self.poll_s = poll_s

    @classmethod
    def for_state_machine(cls, state_machine_arn: str, poll_s: float) -> PollSchedule:
        return cls(cls._recent.setdefault(state_machine_arn, deque(maxlen=RECENT_EXECUTIONS)), poll_s)

    def first_delay(self) -> float:
        """The shortest recent duration is the unloaded one: a burst's queued executions take longer."""
        expected = min(self.durations) if len(self.durations) >= MIN_OBSERVED else 0.0
        return min(max(FIRST_POLL_S, FIRST_POLL_FRACTION * expected), self.poll_s)

    def next_delay(self, waited: float) -> float:
        return min(max(FIRST_POLL_S, waited * POLL_BACKOFF), self.poll_s)

    def observe(self, execution: dict) -> None:
        """Remember how long a finished execution ran (the service's startDate → stopDate)."""
        start, stop = execution.get("startDate"), execution.get("stopDate")
        if start is not None and stop is not None:
            self.durations.append(max(0.0, (stop - start).total_seconds()))
