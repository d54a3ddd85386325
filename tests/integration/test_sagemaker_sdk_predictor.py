"""The SageMaker Python SDK's Predictor works unchanged against the model server."""
import boto3
import pytest
from sagemaker.deserializers import JSONDeserializer
from sagemaker.predictor import Predictor
from sagemaker.serializers import IdentitySerializer
from sagemaker.session import Session

pytestmark = pytest.mark.integration


def test_predictor_gets_class_probabilities(model_server, sample_images):
    runtime = boto3.client("sagemaker-runtime", region_name="us-east-1", endpoint_url=model_server.url)
    session = Session(boto_session=boto3.Session(region_name="us-east-1"), sagemaker_runtime_client=runtime)
    predictor = Predictor(
        endpoint_name=model_server.endpoint_name,
        sagemaker_session=session,
        serializer=IdentitySerializer(content_type="image/png"),
        deserializer=JSONDeserializer(),
    )
    for index, (label, images) in enumerate(sample_images.items()):
        probabilities = predictor.predict(images[0])
        assert len(probabilities) == len(sample_images)
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)
        assert max(range(len(probabilities)), key=probabilities.__getitem__) == index, label
