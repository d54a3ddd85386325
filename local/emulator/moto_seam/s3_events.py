"""The seam's S3 → EventBridge → Step Functions section: S3 events in AWS's shape, rules start executions.
"""
from __future__ import annotations

import copy
import json
import re
from typing import Any

from scones.local.emulator import event_targets
from scones.local.emulator.replacement import replace_once



def send_s3_events_as_aws_does() -> None:
    """S3's EventBridge events in AWS's shape (`etag`, `reason: PutObject`), to ENABLED rules whose
    pattern matches; moto 5.2 sends `eTag` / `reason: ObjectCreated` and hides every error."""
    from moto.s3 import notifications

    def _send_event_bridge_message(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
        from moto.events.models import events_backends

        event = event_targets.s3_object_event(
            account=account_id, region=bucket.region_name, bucket=bucket.name, bucket_arn=bucket.arn, key=key.name,
            size=key.size, etag=key.etag, version_id=key.version_id, event_name=event_name,
            detail_type=notifications._detail_type(event_name),
        )  # fmt: skip
        for event_bus in events_backends[account_id][bucket.region_name].event_buses.values():
            for rule in list(event_bus.rules.values()):
                if rule.state == "ENABLED":
                    rule.send_to_targets(event, transform_input=False)

    notifications._send_event_bridge_message = _send_event_bridge_message


def report_eventbridge_notifications() -> None:
    """GetBucketNotificationConfiguration shows `EventBridgeConfiguration` when it is on, as AWS does
    (moto 5.2 stores it but drops it from the answer), so a re-deploy sees the switch and writes nothing."""
    from moto.s3.responses import S3Response

    def wrap(original: Any) -> Any:
        def get_bucket_notification(self: Any) -> Any:
            status, headers, body = original(self)
            config = self.backend.get_bucket_notification_configuration(self.bucket_name)
            on = config is not None and config.event_bridge is not None
            if on and isinstance(body, str) and "EventBridgeConfiguration" not in body:
                body = re.sub(r"<NotificationConfiguration([^>]*?)/>", r"<NotificationConfiguration\1></NotificationConfiguration>", body)
                body = body.replace("</NotificationConfiguration>", "<EventBridgeConfiguration/></NotificationConfiguration>")
            return status, headers, body

        return get_bucket_notification

    replace_once(S3Response, "get_bucket_notification", wrap)


def start_executions_from_eventbridge() -> None:
    """EventBridge rules start Step Functions executions (moto 5.2 raises NotImplementedError for a
    `states` target), with the target's InputTransformer applied as AWS always does."""
    from moto.events.models import Rule

    def wrap(original: Any) -> Any:
        def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
            is_states = [target["Arn"].split(":")[2] == "states" for target in self.targets]
            if any(is_states) and self.event_pattern.matches_event(original_event):
                for target, states in zip(self.targets, is_states):
                    if states:
                        _start_execution_for(target, original_event)
            if not all(is_states):
                others = copy.copy(self)
                others.targets = [target for target, states in zip(self.targets, is_states) if not states]
                original(others, original_event, transform_input)

        return send_to_targets

    replace_once(Rule, "send_to_targets", wrap)


def _start_execution_for(target: dict, event: dict) -> None:
    from moto.stepfunctions.responses import get_backend

    region, account = target["Arn"].split(":")[3:5]
    if "InputTransformer" in target:
        execution_input = event_targets.transform_input(target["InputTransformer"], event)
    else:
        execution_input = target.get("Input") or json.dumps(event)
    backend: Any = get_backend(account, region)
    backend.start_execution(target["Arn"], None, execution_input)  # no name: name_unnamed_executions gives one
