"""When run_images looks at an execution (PollSchedule), and run_images' own bookkeeping, with a
stand-in Step Functions client (one function under test; the integration suite uses real ones)."""
from __future__ import annotations

import json
import time
from collections import deque
from datetime import datetime, timedelta, timezone

from scones.local.workflow_client import FIRST_POLL_S, ImageRef, PollSchedule, run_images


def _finished(seconds: float) -> dict:
    start = datetime(2026, 11, 24, tzinfo=timezone.utc)
    return {"startDate": start, "stopDate": start + timedelta(seconds=seconds)}


def test_without_history_the_first_poll_comes_at_once():
    assert PollSchedule(deque(maxlen=20), poll_s=0.25).first_delay() == FIRST_POLL_S


def test_the_first_poll_follows_the_shortest_recent_execution_within_poll_s():
    schedule = PollSchedule(deque(maxlen=20), poll_s=0.25)
    for seconds in (0.050, 0.040, 1.5):  # the 1.5 s one queued behind a burst
        schedule.observe(_finished(seconds))
    assert schedule.first_delay() == 0.8 * 0.040
    schedule.observe({"startDate": None})  # still running: not a duration
    assert PollSchedule(deque([10.0, 10.0, 10.0]), poll_s=0.25).first_delay() == 0.25


def test_a_cold_first_execution_does_not_delay_the_next_ones_first_poll():
    schedule = PollSchedule(deque(maxlen=20), poll_s=0.25)
    schedule.observe(_finished(0.6))  # the stack's first execution: every Lambda environment started cold
    assert schedule.first_delay() == FIRST_POLL_S
    schedule.observe(_finished(0.02))
    schedule.observe(_finished(0.02))
    assert schedule.first_delay() == 0.8 * 0.02


def test_later_polls_back_off_with_the_time_waited():
    schedule = PollSchedule(deque(), poll_s=0.25)
    assert schedule.next_delay(0.001) == FIRST_POLL_S
    assert schedule.next_delay(0.5) == 0.5 * 0.2
    assert schedule.next_delay(60) == 0.25


def test_durations_are_kept_per_state_machine():
    a = PollSchedule.for_state_machine("arn:aws:states:us-east-1:123456789012:stateMachine:test-a", 0.25)
    a.observe(_finished(0.1))
    assert PollSchedule.for_state_machine("arn:aws:states:us-east-1:123456789012:stateMachine:test-a", 0.25).durations == deque([0.1])
    assert not PollSchedule.for_state_machine("arn:aws:states:us-east-1:123456789012:stateMachine:test-b", 0.25).durations


class StandInStepFunctions:
    """Executions that end `seconds[i]` after they start (None: never), as DescribeExecution reports them."""

    def __init__(self, seconds: list[float | None]):
        self.seconds = seconds
        self.started: dict[str, tuple[float, float | None, datetime]] = {}
        self.describes: dict[str, int] = {}

    def start_execution(self, stateMachineArn: str, name: str, input: str) -> dict:
        arn = f"{stateMachineArn}:{name}"
        self.started[arn] = (time.monotonic(), self.seconds[len(self.started)], datetime.now(timezone.utc))
        return {"executionArn": arn}

    def describe_execution(self, executionArn: str) -> dict:
        self.describes[executionArn] = self.describes.get(executionArn, 0) + 1
        began, seconds, start_date = self.started[executionArn]
        if seconds is None or time.monotonic() < began + seconds:
            return {"executionArn": executionArn, "status": "RUNNING", "startDate": start_date}
        output = {"outcome": "classified", "label": "bicycle", "confidence": 0.99}
        return {"executionArn": executionArn, "status": "SUCCEEDED", "startDate": start_date,
                "stopDate": start_date + timedelta(seconds=seconds), "output": json.dumps(output)}  # fmt: skip


def test_every_image_gets_one_outcome_in_input_order_and_a_hung_one_fails_at_the_deadline():
    machine = "arn:aws:states:us-east-1:123456789012:stateMachine:test-order"
    client = StandInStepFunctions([0.06, None, 0.01])
    refs = [ImageRef(f"img{i}.png", "bucket", f"uploads/img{i}.png") for i in range(3)]
    seen = []
    outcomes = run_images(client, machine, refs, timeout_s=0.3, on_done=seen.append)
    assert [o.image for o in outcomes] == ["img0.png", "img1.png", "img2.png"]
    assert [o.outcome for o in outcomes] == ["classified", "failed", "classified"]
    assert "still running after" in outcomes[1].reason
    assert sorted(o.image for o in seen) == ["img0.png", "img1.png", "img2.png"]
    assert all(count >= 1 for count in client.describes.values())
    assert min(PollSchedule.for_state_machine(machine, 0.25).durations) == 0.01
