"""Send the image to the SageMaker endpoint and add its class probabilities to the state."""
from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

from ..common.config import ENDPOINT_BODY_LIMIT_BYTES
from ..common.images import InvalidInput, NotAnImage, content_type_of, parse_s3_uri, read_image
from ..common.inferences import InvalidInferences
from .endpoint import invoke_endpoint


def image_bytes(event: dict, s3: Any) -> bytes:
    """The image carried inline (image_data) or by reference (image_s3_uri)."""
    if "image_data" in event:
        try:
            return base64.b64decode(event["image_data"], validate=True)
        except (binascii.Error, TypeError, ValueError) as error:
            raise NotAnImage(f"image_data is not base64 text: {error}") from error
    if "image_s3_uri" in event:
        return read_image(s3, *parse_s3_uri(event["image_s3_uri"]), ENDPOINT_BODY_LIMIT_BYTES)
    raise InvalidInput(f"input has neither image_data nor image_s3_uri (keys {sorted(event)})")


def classify_image(
    event: dict, runtime: Any, s3: Any, endpoint_name: str, class_names: Sequence[str]
) -> dict:
    """The input, minus the image bytes (to keep payloads small), plus inferences and labels."""
    data = image_bytes(event, s3)
    content_type = content_type_of(data, event.get("s3_key", "image_data"))
    inferences = invoke_endpoint(runtime, endpoint_name, data, content_type)
    if not isinstance(inferences, list) or len(inferences) != len(class_names):
        raise InvalidInferences(
            f"endpoint {endpoint_name} returned {inferences!r} for classes {list(class_names)}"
        )
    state = {key: value for key, value in event.items() if key != "image_data"}
    return {**state, "inferences": [float(p) for p in inferences], "labels": list(class_names)}
