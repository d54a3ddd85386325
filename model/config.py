"""Configuration from the environment, with every default in one place, read once.

`model/`, `local/` and the tooling around `lambdas/` all read this module; it lives under
`model/` so that the trainer (and its SageMaker source bundle) never imports `local/`.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_THRESHOLD = 0.93  # the seeds' confidence threshold: below it a photo goes to a person
DEFAULT_CLASSES = ("bicycle", "motorcycle")
# Dummy credentials for local stacks (moto, LocalStack): botocore needs some, they must never be real.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
_S3_URI = re.compile(r"s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(.*))?")


class InvalidS3Uri(ValueError):
    """Not an s3://bucket[/key] URI."""


def parse_s3_uri(uri: str, *, key_required: bool = True) -> tuple[str, str]:
    """s3://bucket/key → (bucket, key); with key_required=False the key (a prefix) may be empty."""
    match = _S3_URI.fullmatch(uri.strip())
    if not match or (key_required and not match.group(2)):
        shape = "s3://bucket/key" if key_required else "s3://bucket/prefix"
        raise InvalidS3Uri(f"not an {shape} URI: {uri!r}")
    return match.group(1), match.group(2) or ""


@dataclass(frozen=True)
class Settings:
    """What a stack is called and where its local state lives."""

    home: Path  # SCONES_HOME: state file, caches, logs of the embedded stack
    stack_name: str  # SCONES_STACK: prefix of every resource name, and the tag value
    region: str  # AWS_REGION / AWS_DEFAULT_REGION
    bucket: str  # SCONES_BUCKET: images, review/failed records, data capture
    endpoint_name: str  # SCONES_ENDPOINT_NAME: the SageMaker endpoint the classify Lambda calls
    threshold: float  # SCONES_THRESHOLD: the filter's confidence threshold

    @property
    def state_file(self) -> Path:
        return self.home / "stack.json"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"


def load_settings(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    stack = env.get("SCONES_STACK", "scones")
    return Settings(
        home=Path(env.get("SCONES_HOME", ".scones")).resolve(),
        stack_name=stack,
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        bucket=env.get("SCONES_BUCKET", f"{stack}-images"),
        endpoint_name=env.get("SCONES_ENDPOINT_NAME", f"{stack}-image-classifier"),
        threshold=float(env.get("SCONES_THRESHOLD", DEFAULT_THRESHOLD)),
    )
