"""Read the image named in the input and carry it on: inline base64 text, or an S3 reference."""
from __future__ import annotations

import base64
from typing import Any

from ..common.config import ENDPOINT_BODY_LIMIT_BYTES
from ..common.images import image_location, read_image, s3_uri


def serialize_image(
    event: dict, s3: Any, inline_limit_bytes: int, max_bytes: int = ENDPOINT_BODY_LIMIT_BYTES
) -> dict:
    """The input plus `image_data` (base64 str), or `image_s3_uri` when too big to inline.

    Step Functions limits a state's payload to 256 KiB, so a large image is not copied into
    the state: the classify step reads it from S3 itself.
    """
    bucket, key = image_location(event)
    data = read_image(s3, bucket, key, max_bytes)
    if len(data) <= inline_limit_bytes:
        return {**event, "image_data": base64.b64encode(data).decode("ascii")}
    return {**event, "image_s3_uri": s3_uri(bucket, key)}
