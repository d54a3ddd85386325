"""Pass confident inferences on; send the rest to human review by raising a named error."""
from __future__ import annotations

from ..common.errors import WorkflowError
from ..common.inferences import best_inference


class ThresholdConfidenceNotMet(WorkflowError):
    """The best class is below the threshold: the state machine catches this → review."""


def filter_inferences(event: dict, threshold: float) -> dict:
    """The input plus label, confidence and outcome "classified", if confident enough."""
    label, confidence = best_inference(event.get("inferences"), event.get("labels"))
    if confidence < threshold:
        raise ThresholdConfidenceNotMet(
            f"best label {label!r} has confidence {confidence:.4f}, below the threshold {threshold}"
        )
    return {**event, "label": label, "confidence": confidence, "outcome": "classified"}
