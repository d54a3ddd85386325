"""Lambda entry point: image → inferences from the SageMaker endpoint named ENDPOINT_NAME."""
import boto3

from ..common.config import load_config
from ..common.log import lambda_entrypoint
from .classify import classify_image
from .endpoint import CLIENT_CONFIG

RUNTIME = boto3.client("sagemaker-runtime", config=CLIENT_CONFIG)
S3 = boto3.client("s3")


@lambda_entrypoint
def lambda_handler(event: dict, context: object) -> dict:
    config = load_config()
    return classify_image(event, RUNTIME, S3, config.require("endpoint_name"), config.require("class_names"))
