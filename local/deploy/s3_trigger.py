"""S3 → EventBridge → the state machine: a photo put under `incoming/` starts one execution.

The bucket sends its events to EventBridge (NotificationConfiguration EventBridgeConfiguration);
a rule on the default bus matches `Object Created` under the prefix and its target, with an
input transformer, starts the workflow with the same {"s3_bucket", "s3_key"} input that
`scones classify` sends. EventBridge assumes a role that may only start this state machine.
https://docs.aws.amazon.com/AmazonS3/latest/userguide/EventBridge.html
https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-transform-target-input.html
"""
from __future__ import annotations

import json
from typing import Any

INCOMING_PREFIX = "incoming/"
TARGET_ID = "workflow"
# Quoted placeholders: the key's text goes into the JSON string as it is.
INPUT_TRANSFORMER = {
    "InputPathsMap": {"bucket": "$.detail.bucket.name", "key": "$.detail.object.key"},
    "InputTemplate": '{"s3_bucket": "<bucket>", "s3_key": "<key>"}',
}


def rule_name(stack_name: str) -> str:
    return f"{stack_name}-incoming"


def event_pattern(bucket: str, prefix: str = INCOMING_PREFIX) -> dict:
    return {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [bucket]}, "object": {"key": [{"prefix": prefix}]}},
    }


def ensure_s3_trigger(s3: Any, events: Any, *, stack_name: str, bucket: str, state_machine_arn: str,
                      role_arn: str, tags: dict[str, str]) -> str:
    """Create or update the bucket's EventBridge switch, the rule and its target; returns the rule ARN.
    A second run with nothing changed writes only tags (plain moto 5.2 does not report the EventBridge
    switch, so there it is written again; the embedded stack's moto, like AWS, reports it)."""
    if "EventBridgeConfiguration" not in s3.get_bucket_notification_configuration(Bucket=bucket):
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}})
    name, pattern = rule_name(stack_name), event_pattern(bucket)
    try:
        rule = events.describe_rule(Name=name)
        rule_arn = rule["Arn"] if (json.loads(rule["EventPattern"]), rule["State"]) == (pattern, "ENABLED") else None
    except events.exceptions.ResourceNotFoundException:
        rule_arn = None
    if rule_arn is None:
        rule_arn = events.put_rule(
            Name=name, EventPattern=json.dumps(pattern), State="ENABLED",
            Description=f"Scones Unlimited: photos under s3://{bucket}/{INCOMING_PREFIX} start the workflow",
        )["RuleArn"]
    events.tag_resource(ResourceARN=rule_arn, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    target = {"Id": TARGET_ID, "Arn": state_machine_arn, "RoleArn": role_arn, "InputTransformer": INPUT_TRANSFORMER}
    changed = events.list_targets_by_rule(Rule=name)["Targets"] != [target]
    if changed and events.put_targets(Rule=name, Targets=[target]).get("FailedEntryCount", 0):
        raise RuntimeError(f"EventBridge refused the target of rule {name}")
    return rule_arn


def delete_s3_trigger(events: Any, stack_name: str) -> bool:
    """Remove the rule and its target; False when there was none."""
    try:
        events.remove_targets(Rule=rule_name(stack_name), Ids=[TARGET_ID])
        events.delete_rule(Name=rule_name(stack_name))
    except events.exceptions.ResourceNotFoundException:
        return False
    return True
