"""Lambda entry point: the review / failure record for a Catch path of the workflow."""
from datetime import datetime, timezone

import boto3

from ..common.config import load_config
from ..common.log import lambda_entrypoint
from .records import record_outcome

S3 = boto3.client("s3")


@lambda_entrypoint
def lambda_handler(event: dict, context: object) -> dict:
    return record_outcome(event, S3, load_config(), datetime.now(timezone.utc))
