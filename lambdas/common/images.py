"""Reading an image object from S3 and recognising it without Pillow (stdlib + boto3 only)."""
from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from .errors import WorkflowError

# Magic bytes of the formats the model server accepts.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
)


class ImageNotFound(WorkflowError):
    """The input names an S3 object that does not exist (or cannot be read)."""


class EmptyImage(WorkflowError):
    """The object exists but holds zero bytes."""


class NotAnImage(WorkflowError):
    """The object's bytes are not a PNG or JPEG."""


class ImageTooLarge(WorkflowError):
    """The image is above the endpoint's request body limit."""


class InvalidInput(WorkflowError):
    """The execution input lacks s3_bucket/s3_key or has them in the wrong shape."""


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise InvalidInput(f"not an s3://bucket/key URI: {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


def image_location(event: dict) -> tuple[str, str]:
    bucket, key = event.get("s3_bucket"), event.get("s3_key")
    if not isinstance(bucket, str) or not bucket or not isinstance(key, str) or not key:
        raise InvalidInput(f"input needs string s3_bucket and s3_key, got keys {sorted(event)}")
    return bucket, key


def content_type_of(data: bytes, where: str) -> str:
    """The MIME type recognised from the magic bytes, or NotAnImage."""
    if not data:
        raise EmptyImage(f"{where} is empty (0 bytes)")
    for signature, content_type in _SIGNATURES:
        if data.startswith(signature):
            return content_type
    raise NotAnImage(f"{where} is not a PNG or JPEG (starts with {data[:8]!r})")


def read_image(s3: Any, bucket: str, key: str, max_bytes: int) -> bytes:
    """The object's bytes, checked to be a non-empty PNG/JPEG of at most max_bytes."""
    where = s3_uri(bucket, key)
    try:
        response = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "ClientError")
        raise ImageNotFound(f"no object {where}: {code}") from error
    size = response["ContentLength"]
    if size > max_bytes:
        response["Body"].close()
        raise ImageTooLarge(f"{where} is {size} bytes; the endpoint accepts at most {max_bytes}")
    data = response["Body"].read()
    content_type_of(data, where)
    return data
