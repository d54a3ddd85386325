"""Data capture from a real server process into a real moto S3 server, in SageMaker's layout."""
from __future__ import annotations

import base64
import json
import re
import uuid

import boto3
import pytest

from test_model_server import image_bytes, invoke, runtime_client

pytestmark = [pytest.mark.integration]

KEY_LAYOUT = re.compile(
    r"^capture/scones-test-endpoint/AllTraffic/\d{4}/\d{2}/\d{2}/\d{2}/\d{2}-\d{2}-\d{3}-[0-9a-f-]{36}\.jsonl$"
)


def captured_records(s3, bucket: str) -> tuple[list[str], list[dict]]:
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    records = [json.loads(line) for key in keys
               for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()]
    return keys, records


@pytest.fixture
def capture_bucket(moto_server: str) -> str:
    bucket = f"capture-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1").create_bucket(Bucket=bucket)
    return bucket


def test_captured_invocations_land_in_s3_in_sagemaker_format(start_model_server, model_artifact, moto_server, capture_bucket) -> None:
    server = start_model_server(model_artifact, env={"AWS_ENDPOINT_URL": moto_server},
                                capture_s3_uri=f"s3://{capture_bucket}/capture", capture_percent=100)
    client = runtime_client(server.url)
    bodies = [image_bytes(seed=seed) for seed in range(3)]
    answers = [invoke(client, server.endpoint_name, body, InferenceId=f"request-{index}")
               for index, body in enumerate(bodies)]
    server.stop()  # shutdown flushes the buffer

    keys, records = captured_records(boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1"), capture_bucket)
    assert keys and all(KEY_LAYOUT.match(key) for key in keys), keys
    assert len(records) == 3
    by_id = {record["eventMetadata"]["eventId"]: record for record in records}
    for index, (body, answer) in enumerate(zip(bodies, answers)):
        record = by_id[f"request-{index}"]
        assert record["eventVersion"] == "0"
        assert record["eventMetadata"]["inferenceId"] == f"request-{index}"
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", record["eventMetadata"]["inferenceTime"])
        sent, returned = record["captureData"]["endpointInput"], record["captureData"]["endpointOutput"]
        assert (sent["observedContentType"], sent["mode"], sent["encoding"]) == ("image/png", "INPUT", "BASE64")
        assert base64.b64decode(sent["data"]) == body
        assert (returned["observedContentType"], returned["mode"], returned["encoding"]) == ("application/json", "OUTPUT", "JSON")
        assert json.loads(returned["data"]) == answer


def test_capture_percent_zero_writes_nothing(start_model_server, model_artifact, moto_server, capture_bucket) -> None:
    server = start_model_server(model_artifact, env={"AWS_ENDPOINT_URL": moto_server},
                                capture_s3_uri=f"s3://{capture_bucket}/capture", capture_percent=0)
    client = runtime_client(server.url)
    for seed in range(5):
        invoke(client, server.endpoint_name, image_bytes(seed=seed))
    server.stop()
    assert "Application shutdown complete" in server.log()
    keys, _ = captured_records(boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1"), capture_bucket)
    assert keys == []
