"""serialize_image: S3 object → base64 text inline, or an S3 reference when too big to inline."""
from __future__ import annotations

import base64
import importlib
import json
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from scones.lambdas.common.images import EmptyImage, ImageNotFound, ImageTooLarge, InvalidInput, NotAnImage
from scones.lambdas.serialize_image.serialize import serialize_image

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="images")
        yield client


def put(s3, key: str, body: bytes) -> dict:
    s3.put_object(Bucket="images", Key=key, Body=body)
    return {"s3_bucket": "images", "s3_key": key}


def test_small_image_travels_inline_as_base64_text_and_extra_keys_pass_through(s3):
    event = {**put(s3, "test/bicycle_s_000513.png", PNG), "batch": "b1"}
    output = serialize_image(event, s3, inline_limit_bytes=1024)
    assert isinstance(output["image_data"], str)
    assert base64.b64decode(output["image_data"]) == PNG
    assert output["batch"] == "b1" and "image_s3_uri" not in output
    json.dumps(output)


def test_jpeg_is_accepted(s3):
    output = serialize_image(put(s3, "a.jpg", JPEG), s3, inline_limit_bytes=1024)
    assert base64.b64decode(output["image_data"]) == JPEG


def test_image_above_inline_limit_travels_as_s3_reference(s3):
    output = serialize_image(put(s3, "big.png", PNG), s3, inline_limit_bytes=16)
    assert output["image_s3_uri"] == "s3://images/big.png"
    assert "image_data" not in output


@pytest.mark.parametrize(
    ("body", "error", "words"),
    [(b"", EmptyImage, "empty"), (b"hello, not an image", NotAnImage, "not a PNG or JPEG")],
)
def test_bad_objects_raise_named_errors(s3, body, error, words):
    with pytest.raises(error, match=words):
        serialize_image(put(s3, "bad.png", body), s3, inline_limit_bytes=1024)


def test_missing_object_names_the_uri(s3):
    with pytest.raises(ImageNotFound, match=r"no object s3://images/nope.png: NoSuchKey"):
        serialize_image({"s3_bucket": "images", "s3_key": "nope.png"}, s3, inline_limit_bytes=1024)


def test_image_over_the_endpoint_body_limit_is_too_large(s3):
    with pytest.raises(ImageTooLarge, match="at most 32"):
        serialize_image(put(s3, "huge.png", PNG), s3, inline_limit_bytes=16, max_bytes=32)


@pytest.mark.parametrize("event", [{}, {"s3_bucket": "images"}, {"s3_bucket": "images", "s3_key": 3}])
def test_input_without_bucket_and_key_is_invalid(s3, event):
    with pytest.raises(InvalidInput):
        serialize_image(event, s3, inline_limit_bytes=1024)


def test_handler_returns_plain_json_and_logs_json_with_the_request_id(s3, capsys, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    put(s3, "a.png", PNG)
    handler = importlib.reload(importlib.import_module("scones.lambdas.serialize_image.handler"))
    context = SimpleNamespace(aws_request_id="req-123")
    output = handler.lambda_handler({"s3_bucket": "images", "s3_key": "a.png"}, context)
    assert json.loads(json.dumps(output))["image_data"] == base64.b64encode(PNG).decode()
    with pytest.raises(ImageNotFound):
        handler.lambda_handler({"s3_bucket": "images", "s3_key": "missing.png"}, context)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert any(line["request_id"] == "req-123" and line["error"] == "ImageNotFound" for line in lines)
