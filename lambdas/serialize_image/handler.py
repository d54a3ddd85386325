"""Lambda entry point: S3 object → image_data (base64 text) or image_s3_uri."""
import boto3

from ..common.config import load_config
from ..common.log import lambda_entrypoint
from .serialize import serialize_image

S3 = boto3.client("s3")


@lambda_entrypoint
def lambda_handler(event: dict, context: object) -> dict:
    return serialize_image(event, S3, load_config().inline_image_limit_bytes)
