"""The moto host's shared listing of botocore's service data (local/emulator/botocore_listing.py)."""
from __future__ import annotations

import botocore.loaders
from botocore.loaders import Loader

from scones.local.emulator import botocore_listing


def test_new_loaders_answer_the_same_listing_without_walking_the_data_again(monkeypatch):
    monkeypatch.setattr(Loader, "list_available_services", Loader.list_available_services)  # restored after the test
    monkeypatch.setattr(botocore_listing, "_listings", {})
    expected = Loader().list_available_services("service-2")
    botocore_listing.share_service_listings()
    botocore_listing.share_service_listings()  # installing twice wraps once

    walks = []
    real_listdir = botocore.loaders.os.listdir
    monkeypatch.setattr(botocore.loaders.os, "listdir", lambda path: walks.append(path) or real_listdir(path))
    first = Loader().list_available_services("service-2")
    walked_once = len(walks)
    second = Loader().list_available_services("service-2")
    second.append("not-a-service")  # a caller's change stays its own

    assert first == expected and "stepfunctions" in first and "s3" in first
    assert walked_once > 100, "the first Loader should have walked botocore's data"
    assert len(walks) == walked_once, "a second Loader walked the data again"
    assert Loader().list_available_services("service-2") == expected
    assert Loader().list_available_services("paginators-1") != expected  # kept per type name
