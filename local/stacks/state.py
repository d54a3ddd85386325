"""What a running stack is and where it answers: one JSON file every command reads.

`scones up` (and the compose / AWS paths) write it; `scones classify`, `status`, `down` and
the tests read it, so nobody has to pass URLs and ARNs around.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

import boto3

from scones.model.config import FAKE_CREDENTIALS, Settings

TARGETS = ("embedded", "compose", "aws")


class StackNotRunning(RuntimeError):
    """No state file: nothing was started (or it was stopped)."""


@dataclass
class StackState:
    target: str  # "embedded" | "compose" | "aws"
    region: str
    aws_endpoint_url: str | None  # moto / LocalStack URL; None on AWS
    model_server_url: str | None  # the SageMaker runtime endpoint the classify Lambda calls
    endpoint_name: str
    bucket: str
    state_machine_arn: str
    stack_name: str
    threshold: float
    class_names: list[str]
    processes: dict[str, int] = field(default_factory=dict)  # name → pid (its process group)
    started_at: str = ""
    model_path: str | None = None  # embedded only: what the model server serves, to restart it

    def boto3_session(self) -> boto3.Session:
        """A session for this stack's region; `client()` adds the endpoint URL.

        The embedded and compose stacks are emulators (moto, LocalStack): they get dummy
        credentials, so no real ones are needed or sent.
        """
        local = self.target in ("embedded", "compose")
        credentials = {name.lower(): value for name, value in FAKE_CREDENTIALS.items()} if local else {}
        return _EndpointSession(self.aws_endpoint_url, self.model_server_url, region_name=self.region, **credentials)

    def client(self, service: str) -> Any:
        return self.boto3_session().client(service)


class _EndpointSession(boto3.Session):
    """boto3.Session whose clients talk to the stack's endpoints, whatever AWS_ENDPOINT_URL says."""

    def __init__(self, aws_endpoint_url: str | None, model_server_url: str | None, **kwargs: Any):
        super().__init__(**kwargs)
        self._aws_endpoint_url = aws_endpoint_url
        self._model_server_url = model_server_url

    def client(self, service_name: str, *args: Any, **kwargs: Any) -> Any:
        if "endpoint_url" not in kwargs:
            if service_name == "sagemaker-runtime" and self._model_server_url:
                kwargs["endpoint_url"] = self._model_server_url
            elif self._aws_endpoint_url:
                kwargs["endpoint_url"] = self._aws_endpoint_url
        return super().client(service_name, *args, **kwargs)


def new_state(
    settings: Settings,
    target: str,
    *,
    class_names: Sequence[str],
    aws_endpoint_url: str | None,
    model_server_url: str | None,
    state_machine_arn: str = "",
    **overrides: Any,
) -> StackState:
    """A StackState for `settings`' stack, started now; `overrides` replace any settings-derived field."""
    values: dict[str, Any] = {
        "target": target, "region": settings.region, "aws_endpoint_url": aws_endpoint_url,
        "model_server_url": model_server_url, "endpoint_name": settings.endpoint_name, "bucket": settings.bucket,
        "state_machine_arn": state_machine_arn, "stack_name": settings.stack_name, "threshold": settings.threshold,
        "class_names": list(class_names), "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip
    values.update(overrides)
    return StackState(**values)


def load_state(settings: Settings) -> StackState:
    path = settings.state_file
    if not path.is_file():
        raise StackNotRunning(f"no stack is running (no {path}); start one with `scones up`")
    data = json.loads(path.read_text())
    known = {f.name for f in fields(StackState)}
    return StackState(**{k: v for k, v in data.items() if k in known})


def save_state(settings: Settings, state: StackState) -> None:
    """Written atomically (temp file + rename), readable only by this user."""
    if state.target not in TARGETS:
        raise ValueError(f"unknown stack target {state.target!r}; expected one of {TARGETS}")
    path = settings.state_file
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(asdict(state), indent=2) + "\n")
    os.chmod(partial, 0o600)
    partial.replace(path)


def remove_state(settings: Settings) -> None:
    settings.state_file.unlink(missing_ok=True)
