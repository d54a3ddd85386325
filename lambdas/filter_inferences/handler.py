"""Lambda entry point: inferences → classified, or ThresholdConfidenceNotMet."""
from ..common.config import load_config
from ..common.log import lambda_entrypoint
from .threshold import filter_inferences


@lambda_entrypoint
def lambda_handler(event: dict, context: object) -> dict:
    return filter_inferences(event, load_config().threshold)
