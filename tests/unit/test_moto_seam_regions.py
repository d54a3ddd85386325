"""A moto backend's regions from the head of its service model (moto_seam/backend_regions.py): the same
list botocore's get_available_regions gives, for the stack's services and the ones the head can't tell."""
from __future__ import annotations

import inspect

import pytest

from scones.local.emulator import replacement
from scones.local.emulator.moto_seam import backend_regions

# The embedded stack's services, two whose metadata has a nested object first (botocore's way), one unknown.
SERVICES = ["s3", "iam", "sts", "lambda", "logs", "sagemaker", "sagemaker-runtime", "stepfunctions", "events",
            "cloudwatch", "sqs", "no-such-service"]  # fmt: skip


def test_moto_lists_regions_through_get_available_regions_once_per_service():
    from moto.core.base_backend import AccountSpecificBackend

    original = replacement.original(AccountSpecificBackend, "_generate_regions")
    assert "get_available_regions(" in inspect.getsource(original), "moto lists regions another way: re-check backend_regions"
    assert "_generate_regions(service_name)" in inspect.getsource(AccountSpecificBackend.__init__)


@pytest.mark.parametrize("service", SERVICES)
def test_regions_are_botocores(service: str):
    from moto.core.base_backend import AccountSpecificBackend

    backend_regions.list_regions_from_metadata()
    session = AccountSpecificBackend.get_session()
    expected = [region for partition in session.get_available_partitions()
                for region in session.get_available_regions(service, partition_name=partition)]  # fmt: skip
    assert AccountSpecificBackend._generate_regions(object(), service) == expected


def test_the_prefix_comes_from_the_head_without_loading_the_model():
    from botocore.loaders import create_loader

    loader = create_loader()
    assert backend_regions.endpoint_prefix(loader, "sagemaker") == "api.sagemaker"
    assert backend_regions.endpoint_prefix(loader, "stepfunctions") == "states"
    assert backend_regions.endpoint_prefix(loader, "no-such-service") == backend_regions.UNKNOWN_SERVICE
    assert not any(key[0] in ("load_service_model", "load_data_with_path") for key in loader._cache), "a model was loaded"
