"""The moto host's SageMaker control plane, through boto3 and the SageMaker SDK with AWS_ENDPOINT_URL alone:
endpoints are real model server processes, created, invoked, updated and deleted as on AWS."""
from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from fixtures.promote_fixtures import derived_artifact

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BUCKET = "sagemaker-endpoints-test"
ROLE = "arn:aws:iam::123456789012:role/sagemaker-test"
ACCOUNT = "123456789012"


def _servers(host: str, endpoint: str) -> list[dict]:
    with urllib.request.urlopen(f"{host}/_scones/sagemaker/endpoints") as response:
        endpoints = json.loads(response.read())["Endpoints"]
    return next((e["servers"] for e in endpoints if e["EndpointName"] == endpoint), [])


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _model_and_config(session: boto3.Session, name: str, artifact: Path, capture: bool = False) -> str:
    """Upload `artifact`, CreateModel and CreateEndpointConfig named `name`; returns the config name."""
    s3, sm = session.client("s3"), session.client("sagemaker")
    if BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=BUCKET)
    s3.upload_file(str(artifact), BUCKET, f"models/{name}/model.tar.gz")
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.6.0-cpu-py312",
        "ModelDataUrl": f"s3://{BUCKET}/models/{name}/model.tar.gz"})  # fmt: skip
    extra = {"DataCaptureConfig": {
        "EnableCapture": True, "InitialSamplingPercentage": 100, "DestinationS3Uri": f"s3://{BUCKET}/capture",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]}} if capture else {}  # fmt: skip
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}],
        **extra)  # fmt: skip
    return name


def _wait(sm, endpoint: str, timeout_s: float = 180) -> dict:
    deadline = time.monotonic() + timeout_s
    while (described := sm.describe_endpoint(EndpointName=endpoint))["EndpointStatus"] in ("Creating", "Updating"):
        assert time.monotonic() < deadline, f"{endpoint} still {described['EndpointStatus']}"
        time.sleep(0.2)
    return described


def _invoke(runtime, endpoint: str, png: bytes) -> list[float]:
    response = runtime.invoke_endpoint(EndpointName=endpoint, ContentType="image/png", Accept="application/json", Body=png)
    assert response["InvokedProductionVariant"] == "AllTraffic"
    return json.loads(response["Body"].read())


def _validation_error(runtime, endpoint: str, png: bytes) -> str:
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(EndpointName=endpoint, ContentType="image/png", Body=png)
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    return raised.value.response["Error"]["Message"]


def test_create_invoke_capture_update_delete(sagemaker_host, sagemaker_session, model_artifact, sample_images, tmp_path):
    sm, runtime, s3 = (sagemaker_session.client(s) for s in ("sagemaker", "sagemaker-runtime", "s3"))
    png = next(iter(sample_images.values()))[0]
    first = _model_and_config(sagemaker_session, "lifecycle-a", model_artifact, capture=True)
    swapped = derived_artifact(model_artifact, tmp_path / "swapped.tar.gz", swap_outputs=True)
    second = _model_and_config(sagemaker_session, "lifecycle-b", swapped, capture=True)

    sm.create_endpoint(EndpointName="lifecycle", EndpointConfigName=first)
    assert sm.describe_endpoint(EndpointName="lifecycle")["EndpointStatus"] == "Creating"
    assert _validation_error(runtime, "lifecycle", png) == f"Endpoint lifecycle of account {ACCOUNT} not found."
    with pytest.raises(ClientError, match="already existing endpoint"):
        sm.create_endpoint(EndpointName="lifecycle", EndpointConfigName=first)
    started = time.monotonic()
    assert _wait(sm, "lifecycle")["EndpointStatus"] == "InService"
    print(f"endpoint InService {time.monotonic() - started:.1f} s after the first check")
    answer = _invoke(runtime, "lifecycle", png)
    assert len(answer) == 2 and sum(answer) == pytest.approx(1.0, abs=1e-4)
    [old_server] = _servers(sagemaker_host, "lifecycle")

    sm.update_endpoint(EndpointName="lifecycle", EndpointConfigName=second)
    assert sm.describe_endpoint(EndpointName="lifecycle")["EndpointStatus"] == "Updating"
    assert _invoke(runtime, "lifecycle", png) == answer  # the old fleet serves during the update
    described = _wait(sm, "lifecycle")
    assert (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", second)
    assert _invoke(runtime, "lifecycle", png) == pytest.approx(answer[::-1], abs=1e-5)
    assert not _alive(old_server["pid"]), "the old model server still runs after the update"
    assert sm.list_endpoints(StatusEquals="InService", NameContains="lifecycle")["Endpoints"][0]["EndpointName"] == "lifecycle"

    [new_server] = _servers(sagemaker_host, "lifecycle")
    sm.delete_endpoint(EndpointName="lifecycle")
    assert not _alive(new_server["pid"]), "DeleteEndpoint left the model server running"
    assert _validation_error(runtime, "lifecycle", png) == f"Endpoint lifecycle of account {ACCOUNT} not found."
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="capture/lifecycle/AllTraffic/").get("Contents", [])]
    records = [json.loads(line) for key in keys for line in s3.get_object(Bucket=BUCKET, Key=key)["Body"].iter_lines()]
    assert len(records) >= 3, "data capture did not reach the config's S3 URI"
    assert records[0]["captureData"]["endpointInput"]["observedContentType"] == "image/png"


def test_two_endpoints_serve_two_models_at_once(sagemaker_session, model_artifact, sample_images, tmp_path):
    sm, runtime = sagemaker_session.client("sagemaker"), sagemaker_session.client("sagemaker-runtime")
    png = next(iter(sample_images.values()))[0]
    swapped = derived_artifact(model_artifact, tmp_path / "swapped.tar.gz", swap_outputs=True)
    sm.create_endpoint(EndpointName="pair-a", EndpointConfigName=_model_and_config(sagemaker_session, "pair-a", model_artifact))
    sm.create_endpoint(EndpointName="pair-b", EndpointConfigName=_model_and_config(sagemaker_session, "pair-b", swapped))
    try:
        assert _wait(sm, "pair-a")["EndpointStatus"] == _wait(sm, "pair-b")["EndpointStatus"] == "InService"
        a, b = _invoke(runtime, "pair-a", png), _invoke(runtime, "pair-b", png)
        assert b == pytest.approx(a[::-1], abs=1e-5) and a != b
    finally:
        sm.delete_endpoint(EndpointName="pair-a")
        sm.delete_endpoint(EndpointName="pair-b")


def test_unknown_endpoint_is_aws_validation_error(sagemaker_session, sample_images):
    runtime = sagemaker_session.client("sagemaker-runtime")
    png = next(iter(sample_images.values()))[0]
    assert _validation_error(runtime, "no-such-endpoint", png) == f"Endpoint no-such-endpoint of account {ACCOUNT} not found."


@pytest.mark.parametrize("problem", ["not-a-tarball", "missing-object"])
def test_a_bad_model_ends_failed_with_a_reason(sagemaker_session, sample_images, tmp_path, problem):
    sm, s3 = sagemaker_session.client("sagemaker"), sagemaker_session.client("s3")
    bad = tmp_path / "model.tar.gz"
    bad.write_bytes(b"this is not a gzip tarball")
    name = f"bad-{problem}"
    config = _model_and_config(sagemaker_session, name, bad)
    if problem == "missing-object":
        s3.delete_object(Bucket=BUCKET, Key=f"models/{name}/model.tar.gz")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=config)
    described = _wait(sm, name)
    assert described["EndpointStatus"] == "Failed"
    expected = "Failed to download model data" if problem == "missing-object" else "did not pass the ping health check"
    assert expected in described["FailureReason"]
    png = next(iter(sample_images.values()))[0]
    assert "not found" in _validation_error(sagemaker_session.client("sagemaker-runtime"), name, png)
    sm.delete_endpoint(EndpointName=name)


def test_sagemaker_sdk_predictor_through_aws_endpoint_url_alone(sagemaker_session, model_artifact, sample_images):
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import IdentitySerializer
    from sagemaker.session import Session

    sm = sagemaker_session.client("sagemaker")
    sm.create_endpoint(EndpointName="sdk", EndpointConfigName=_model_and_config(sagemaker_session, "sdk", model_artifact))
    try:
        assert _wait(sm, "sdk")["EndpointStatus"] == "InService"
        predictor = Predictor(endpoint_name="sdk", sagemaker_session=Session(boto_session=boto3.Session(region_name="us-east-1")),
                              serializer=IdentitySerializer(content_type="image/png"), deserializer=JSONDeserializer())  # fmt: skip
        for index, (label, images) in enumerate(sample_images.items()):
            probabilities = predictor.predict(images[0])
            assert max(range(len(probabilities)), key=probabilities.__getitem__) == index, label
    finally:
        sm.delete_endpoint(EndpointName="sdk")
