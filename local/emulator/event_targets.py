"""S3 → EventBridge → Step Functions, as AWS shapes it; the seam wires these into moto.

- `s3_object_event`: the EventBridge event S3 sends for an object (source aws.s3, detail-type
  "Object Created", detail.bucket.name, detail.object.key, reason "PutObject"):
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html
- `transform_input`: a target's InputTransformer (InputPathsMap of dot-notation JSONPaths,
  InputTemplate with <name> placeholders; inside a JSON string the text goes in as is, outside it
  goes in as a JSON value):
  https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-transform-target-input.html
"""
from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timezone
from typing import Any

# moto's event name suffix → the S3 API call AWS names as the event's reason.
S3_REASONS = {"Put": "PutObject", "Post": "PostObject", "Copy": "CopyObject",
              "CompleteMultipartUpload": "CompleteMultipartUpload"}  # fmt: skip
_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.\-]+)>")
_STEP = re.compile(r"^([^\[\]]+)((?:\[\d+\])*)$")


class InputTransformError(ValueError):
    """The template does not produce JSON, or a path is not dot notation."""


def s3_object_event(*, account: str, region: str, bucket: str, bucket_arn: str, key: str, size: int, etag: str,
                    version_id: str | None, event_name: str, detail_type: str) -> dict[str, Any]:
    """An `aws.s3` EventBridge event for one object."""
    obj: dict[str, Any] = {"key": key, "size": size, "etag": etag.strip('"'), "sequencer": uuid.uuid4().hex[:18].upper()}
    if version_id and version_id != "null":
        obj["version-id"] = version_id
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": detail_type, "source": "aws.s3",
        "account": account, "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "region": region,
        "resources": [bucket_arn],
        "detail": {"version": "0", "bucket": {"name": bucket}, "object": obj, "request-id": uuid.uuid4().hex[:16].upper(),
                   "requester": account, "source-ip-address": "127.0.0.1",
                   "reason": S3_REASONS.get(event_name.rsplit(":", 1)[-1], event_name.rsplit(":", 1)[-1])},
    }  # fmt: skip


def json_path_value(event: dict[str, Any], path: str) -> Any:
    """A dot-notation JSONPath (`$.detail.object.key`, `$.resources[0]`); None where absent."""
    if path == "$":
        return event
    if not path.startswith("$."):
        raise InputTransformError(f"InputPathsMap path must start with '$.': {path!r}")
    value: Any = event
    for step in path[2:].split("."):
        match = _STEP.match(step)
        if match is None:
            raise InputTransformError(f"unsupported JSONPath step {step!r} in {path!r}")
        value = value.get(match.group(1)) if isinstance(value, dict) else None
        for index in re.findall(r"\[(\d+)\]", match.group(2)):
            value = value[int(index)] if isinstance(value, list) and int(index) < len(value) else None
    return value


def transform_input(transformer: dict[str, Any], event: dict[str, Any]) -> str:
    """The text EventBridge sends to the target for this event."""
    values = {name: json_path_value(event, path) for name, path in transformer.get("InputPathsMap", {}).items()}
    values["aws.events.event.json"] = event
    values["aws.events.event.ingestion-time"] = event.get("time")
    template = transformer.get("InputTemplate", "")
    out, in_string, escaped, last = [], False, False, 0
    for index, char in enumerate(template):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            in_string = not in_string
        elif char == "<" and (match := _PLACEHOLDER.match(template, index)) and match.group(1) in values:
            if index < last:
                continue
            value = values[match.group(1)]
            out.append(template[last:index])
            if in_string:
                out.append(json.dumps(value if isinstance(value, str) else json.dumps(value))[1:-1])
            else:
                out.append(json.dumps(value))
            last = match.end()
    out.append(template[last:])
    return "".join(out)
