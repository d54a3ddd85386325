"""S3's EventBridge event shape and EventBridge's input transformer, as AWS documents them."""
from __future__ import annotations

import json

import pytest

from scones.local.deploy.s3_trigger import INPUT_TRANSFORMER, event_pattern
from scones.local.emulator.event_targets import InputTransformError, json_path_value, s3_object_event, transform_input

EVENT = s3_object_event(account="123456789012", region="us-east-1", bucket="b", bucket_arn="arn:aws:s3:::b",
                        key='incoming/a "b".png', size=3, etag='"abc"', version_id=None,
                        event_name="s3:ObjectCreated:Put", detail_type="Object Created")  # fmt: skip


def test_s3_event_has_aws_shape():
    assert (EVENT["source"], EVENT["detail-type"], EVENT["resources"]) == ("aws.s3", "Object Created", ["arn:aws:s3:::b"])
    detail = EVENT["detail"]
    assert detail["bucket"] == {"name": "b"} and detail["reason"] == "PutObject"
    assert detail["object"]["etag"] == "abc" and "version-id" not in detail["object"]


def test_deploy_transformer_gives_the_workflow_input():
    assert json.loads(transform_input(INPUT_TRANSFORMER, EVENT)) == {"s3_bucket": "b", "s3_key": 'incoming/a "b".png'}


def test_placeholders_outside_strings_are_json_values():
    transformer = {"InputPathsMap": {"size": "$.detail.object.size", "resources": "$.resources", "first": "$.resources[0]"},
                   "InputTemplate": '{"size": <size>, "all": <resources>, "text": "<first> has <size> bytes"}'}
    assert json.loads(transform_input(transformer, EVENT)) == {
        "size": 3, "all": ["arn:aws:s3:::b"], "text": "arn:aws:s3:::b has 3 bytes"}


def test_missing_paths_are_null_and_bad_paths_are_named():
    assert json_path_value(EVENT, "$.detail.nothing.here") is None
    with pytest.raises(InputTransformError):
        json_path_value(EVENT, "detail.bucket")


def test_rule_pattern_selects_incoming_objects_of_the_bucket():
    pattern = event_pattern("b")
    assert pattern["detail"] == {"bucket": {"name": ["b"]}, "object": {"key": [{"prefix": "incoming/"}]}}
