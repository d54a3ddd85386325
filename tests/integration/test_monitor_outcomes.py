"""Outcome counts from real Step Functions executions (a moto server that runs definitions)."""
from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from scones.model.monitor.outcomes import summarize_outcomes

pytestmark = pytest.mark.integration

# Stands in for the workflow: routes on the input the way the real one ends (contract C).
DEFINITION = {"StartAt": "Route", "States": {
    "Route": {"Type": "Choice", "Default": "Done", "Choices": [
        {"Variable": "$.outcome", "StringEquals": "failed-not-image", "Next": "NotAnImage"},
        {"Variable": "$.outcome", "StringEquals": "failed-missing", "Next": "ImageNotFound"}]},
    "Done": {"Type": "Pass", "End": True},
    "NotAnImage": {"Type": "Fail", "Error": "NotAnImage", "Cause": "bytes are not an image"},
    "ImageNotFound": {"Type": "Fail", "Error": "ImageNotFound", "Cause": "no object s3://b/k"},
}}


@pytest.fixture(scope="module")
def executing_moto(fake_aws_credentials) -> Iterator[str]:
    """Its own moto server, so enabling execution does not change the shared one."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    config = json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode()
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/config", data=config, method="POST"), timeout=10)
    yield url
    server.stop()


def test_counts_outcomes_and_failure_reasons(executing_moto, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", executing_moto)
    session = boto3.Session(region_name="us-east-1")
    sfn, s3 = session.client("stepfunctions"), session.client("s3")
    arn = sfn.create_state_machine(name="monitor-outcomes", definition=json.dumps(DEFINITION),
                                   roleArn="arn:aws:iam::123456789012:role/sfn")["stateMachineArn"]
    sent = [{"outcome": "classified"}] * 3 + [{"outcome": "review", "reason": "ThresholdConfidenceNotMet"}] * 2 \
        + [{"outcome": "failed-not-image"}] * 2 + [{"outcome": "failed-missing"}]
    for number, execution_input in enumerate(sent):
        sfn.start_execution(stateMachineArn=arn, name=f"run-{number}", input=json.dumps(execution_input))
    s3.create_bucket(Bucket="outcomes")
    for name in ("review/run-3.json", "review/run-4.json", "failed/run-5.json"):
        s3.put_object(Bucket="outcomes", Key=name, Body=b"{}")

    deadline = time.monotonic() + 30
    while (summary := summarize_outcomes(session, arn, "outcomes")).counts["running"]:
        assert time.monotonic() < deadline, "executions still running"
        time.sleep(0.2)

    assert summary.executions == 8
    assert {o: summary.count(o) for o in ("classified", "review", "failed")} == {"classified": 3, "review": 2, "failed": 3}
    assert summary.failure_reasons == {"NotAnImage": 2, "ImageNotFound": 1}
    assert summary.review_reasons == {"ThresholdConfidenceNotMet": 2}
    # Two failed executions left no record: the report says so rather than hiding it.
    assert summary.notes == ["3 failed execution(s) but 1 record(s) under s3://outcomes/failed/"]

    records_only = summarize_outcomes(session, None, "outcomes")
    assert records_only.count("classified") is None and records_only.count("review") == 2
