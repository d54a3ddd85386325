"""Every function's configuration, from environment variables, with defaults in one place."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import WorkflowError

DEFAULT_THRESHOLD = 0.93
# Step Functions caps a state's payload at 256 KiB; base64 grows bytes by 4/3, so images up
# to 128 KiB travel inline (~171 KiB of text) and larger ones travel as an S3 reference.
DEFAULT_INLINE_IMAGE_LIMIT_BYTES = 128 * 1024
# SageMaker's invoke_endpoint rejects request bodies above 6 MiB.
ENDPOINT_BODY_LIMIT_BYTES = 6_291_456


class ConfigurationError(WorkflowError):
    """A required environment variable is missing or malformed."""


@dataclass(frozen=True)
class FunctionConfig:
    endpoint_name: str  # ENDPOINT_NAME
    class_names: tuple[str, ...]  # CLASS_NAMES, comma-separated, in the model's class order
    threshold: float  # THRESHOLD
    bucket: str  # BUCKET: where review and failure records go
    review_prefix: str  # REVIEW_PREFIX
    failed_prefix: str  # FAILED_PREFIX
    inline_image_limit_bytes: int  # INLINE_IMAGE_LIMIT_BYTES

    def require(self, name: str) -> str:
        """The value of a setting this function cannot run without."""
        value = getattr(self, name)
        if not value:
            raise ConfigurationError(f"environment variable {name.upper()} is not set")
        return value


def load_config(env: Mapping[str, str] | None = None) -> FunctionConfig:
    env = os.environ if env is None else env
    try:
        threshold = float(env.get("THRESHOLD", DEFAULT_THRESHOLD))
        inline_limit = int(env.get("INLINE_IMAGE_LIMIT_BYTES", DEFAULT_INLINE_IMAGE_LIMIT_BYTES))
    except ValueError as error:
        raise ConfigurationError(f"bad THRESHOLD or INLINE_IMAGE_LIMIT_BYTES: {error}") from error
    if not 0.0 <= threshold <= 1.0:
        raise ConfigurationError(f"THRESHOLD must be within [0, 1], got {threshold}")
    return FunctionConfig(
        endpoint_name=env.get("ENDPOINT_NAME", ""),
        class_names=tuple(n.strip() for n in env.get("CLASS_NAMES", "").split(",") if n.strip()),
        threshold=threshold,
        bucket=env.get("BUCKET", ""),
        review_prefix=env.get("REVIEW_PREFIX", "review/"),
        failed_prefix=env.get("FAILED_PREFIX", "failed/"),
        inline_image_limit_bytes=inline_limit,
    )
