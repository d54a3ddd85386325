"""Reading the classifier's answer: the best label and its confidence."""
from __future__ import annotations

from .errors import WorkflowError


class InvalidInferences(WorkflowError):
    """The inferences are missing, malformed, or do not match the class names."""


def best_inference(inferences: object, labels: object) -> tuple[str, float]:
    """(label, confidence) of the most probable class."""
    if not isinstance(inferences, list) or not inferences or not all(
        isinstance(p, (int, float)) and not isinstance(p, bool) for p in inferences
    ):
        raise InvalidInferences(f"inferences must be a non-empty list of numbers, got {inferences!r}")
    if not isinstance(labels, list) or len(labels) != len(inferences):
        raise InvalidInferences(f"{len(inferences)} inferences but labels {labels!r}")
    best = max(range(len(inferences)), key=inferences.__getitem__)
    return str(labels[best]), float(inferences[best])
