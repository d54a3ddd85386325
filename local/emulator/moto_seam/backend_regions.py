"""The seam's region section: which regions a moto backend serves, without loading its service's model.

moto lists a backend's regions (`AccountSpecificBackend._generate_regions`, once per service) with
`botocore.session.Session.get_available_regions`, which loads the service's whole model
(`service-2.json`: SageMaker's is ~5 MB of JSON) for one field of its metadata, the endpoint prefix.
During `scones up` that was ~18 % of the moto host's GIL time (py-spy --gil: eight services' models
parsed while the model server imports torch beside it). `list_regions_from_metadata` reads the prefix
from the head of the same file, where the metadata block is, and asks botocore's endpoint resolver
as `get_available_regions` does: the same regions (tests/unit/test_moto_seam_regions.py compares
them for every service the stack uses). Where the head can't be read that way it asks botocore.
"""
from __future__ import annotations

import gzip
import os
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from scones.local.emulator.replacement import replace_once

HEAD_BYTES = 16384
# The metadata object up to endpointPrefix, with no nested object before it (else: botocore's way).
_PREFIX = re.compile(rb'"metadata"\s*:\s*\{[^{}]*?"endpointPrefix"\s*:\s*"([^"]+)"')
_OPENERS = ((".json", open), (".json.gz", gzip.open))  # botocore.loaders._JSON_OPEN_METHODS, in its order
UNKNOWN_SERVICE = ""


def endpoint_prefix(loader: Any, service_name: str) -> str | None:
    """The endpointPrefix of the service's latest service-2 model, as botocore's Loader finds the file;
    UNKNOWN_SERVICE when botocore has no such service, None when the head of the file doesn't say."""
    if service_name not in loader.list_available_services("service-2"):
        return UNKNOWN_SERVICE
    name = os.path.join(service_name, loader.determine_latest_version(service_name, "service-2"), "service-2")
    for search_path in loader.search_paths:
        for extension, opener in _OPENERS:
            path = os.path.join(search_path, name) + extension
            if os.path.isfile(path):
                with opener(path, "rb") as model:
                    found = _PREFIX.search(model.read(HEAD_BYTES))
                return found.group(1).decode() if found else None
    return None


def list_regions_from_metadata() -> None:
    """AccountSpecificBackend._generate_regions from the model's head instead of the whole model."""
    from moto.core.base_backend import AccountSpecificBackend

    def wrap(original: Callable[[Any, str], list[str]]) -> Callable[[Any, str], list[str]]:
        @lru_cache
        def _generate_regions(self: Any, service_name: str) -> list[str]:
            session = AccountSpecificBackend.get_session()._session  # boto3's Session → botocore's
            prefix = endpoint_prefix(session.get_component("data_loader"), service_name)
            if prefix is None:
                return original(self, service_name)
            if prefix == UNKNOWN_SERVICE:
                return []  # get_available_regions' answer for every partition
            resolver = session._get_internal_component("endpoint_resolver")
            return [region for partition in session.get_available_partitions()
                    for region in resolver.get_available_endpoints(prefix, partition, False)]  # fmt: skip

        return _generate_regions

    replace_once(AccountSpecificBackend, "_generate_regions", wrap)
