"""Configuration from the environment, with every default in one place, read once."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_THRESHOLD = 0.93
DEFAULT_CLASSES = ("bicycle", "motorcycle")


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
