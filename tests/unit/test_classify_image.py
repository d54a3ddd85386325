"""classify_image: one invoke_endpoint call; endpoint errors keep AWS's names."""
from __future__ import annotations

import base64
import io
import json

import boto3
import pytest
from botocore.config import Config
from botocore.response import StreamingBody
from botocore.stub import Stubber
from moto import mock_aws

from scones.lambdas.classify_image.classify import classify_image
from scones.lambdas.classify_image.endpoint import (
    EndpointConnectionError,
    EndpointError,
    ModelError,
    ModelNotReadyException,
    ServiceUnavailable,
    ThrottlingException,
    ValidationError,
)
from scones.lambdas.common.images import InvalidInput, NotAnImage
from scones.lambdas.common.inferences import InvalidInferences

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32
CLASSES = ("bicycle", "motorcycle")


@pytest.fixture
def runtime():
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber


def answer(stubber: Stubber, body: bytes, content_type: str, probabilities: object) -> None:
    payload = json.dumps(probabilities).encode()
    stubber.add_response(
        "invoke_endpoint",
        {"Body": StreamingBody(io.BytesIO(payload), len(payload)), "ContentType": "application/json"},
        {"EndpointName": "ep", "ContentType": content_type, "Accept": "application/json", "Body": body},
    )


def inline(data: bytes, **extra) -> dict:
    return {"s3_bucket": "b", "s3_key": "k.png", "image_data": base64.b64encode(data).decode(), **extra}


def test_adds_inferences_and_labels_and_drops_the_image_bytes(runtime):
    client, stubber = runtime
    answer(stubber, PNG, "image/png", [0.9987, 0.0013])
    output = classify_image(inline(PNG, batch=1), client, None, "ep", CLASSES)
    assert output == {"s3_bucket": "b", "s3_key": "k.png", "batch": 1,
                      "inferences": [0.9987, 0.0013], "labels": ["bicycle", "motorcycle"]}
    stubber.assert_no_pending_responses()


def test_content_type_follows_the_magic_bytes(runtime):
    client, stubber = runtime
    answer(stubber, JPEG, "image/jpeg", [0.1, 0.9])
    assert classify_image(inline(JPEG), client, None, "ep", CLASSES)["inferences"] == [0.1, 0.9]


def test_large_image_is_read_from_its_s3_reference(runtime):
    client, stubber = runtime
    answer(stubber, PNG, "image/png", [0.2, 0.8])
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="images")
        s3.put_object(Bucket="images", Key="big.png", Body=PNG)
        event = {"s3_bucket": "images", "s3_key": "big.png", "image_s3_uri": "s3://images/big.png"}
        output = classify_image(event, client, s3, "ep", CLASSES)
    assert output["inferences"] == [0.2, 0.8] and output["image_s3_uri"] == "s3://images/big.png"


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [("ModelError", 424, ModelError), ("ValidationError", 400, ValidationError),
     ("ModelNotReadyException", 429, ModelNotReadyException), ("ServiceUnavailable", 503, ServiceUnavailable),
     ("ThrottlingException", 400, ThrottlingException), ("InternalFailure", 500, EndpointError)],
)
def test_endpoint_errors_are_re_raised_under_aws_names(runtime, code, status, error):
    client, stubber = runtime
    stubber.add_client_error("invoke_endpoint", service_error_code=code, service_message="boom",
                             http_status_code=status)
    with pytest.raises(error, match=f"endpoint ep: {code}: boom") as caught:
        classify_image(inline(PNG), client, None, "ep", CLASSES)
    assert type(caught.value).__name__ == error.__name__


def test_unreachable_endpoint_is_endpoint_connection_error():
    client = boto3.client(
        "sagemaker-runtime", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
        config=Config(connect_timeout=1, retries={"max_attempts": 1}),
    )
    with pytest.raises(EndpointConnectionError, match="unreachable"):
        classify_image(inline(PNG), client, None, "ep", CLASSES)


def test_answer_not_matching_the_class_names_is_invalid(runtime):
    client, stubber = runtime
    answer(stubber, PNG, "image/png", [0.2, 0.3, 0.5])
    with pytest.raises(InvalidInferences, match="for classes"):
        classify_image(inline(PNG), client, None, "ep", CLASSES)


def test_bad_image_data_and_missing_image_are_named():
    with pytest.raises(NotAnImage):
        classify_image({"image_data": "***not base64***"}, None, None, "ep", CLASSES)
    with pytest.raises(NotAnImage):
        classify_image(inline(b"GIF89a......"), None, None, "ep", CLASSES)
    with pytest.raises(InvalidInput, match="neither image_data nor image_s3_uri"):
        classify_image({"s3_bucket": "b", "s3_key": "k"}, None, None, "ep", CLASSES)
