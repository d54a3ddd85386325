"""One listing of botocore's service data per moto host process, not one per Loader.

moto makes a new botocore `Loader` for every service model it loads (`moto.core.utils._load_service_model`
calls `create_loader()`; `service_name_from_moto_package_name` makes a new `Session`), and boto3
clients made in the host (the Step Functions interpreter's) bring Loaders of their own.
`Loader.list_available_services` walks all ~420 service directories of botocore's data with a stat
per file (11 ms here), and its cache lives on the Loader instance, so every new Loader walks them
again: 17 times during `scones up`, ~0.2 s of the host's CPU while the model server imports torch
beside it. The data directories do not change while the process runs, so the listing is kept per
(search paths, type name) for the process: the same sorted list, computed once.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from scones.local.emulator.replacement import replace_once

_listings: dict[tuple[tuple[str, ...], str], list[str]] = {}
_lock = threading.Lock()


def share_service_listings() -> None:
    """Loader.list_available_services answers from a process-wide cache (a copy, as callers may mutate it)."""
    from botocore.loaders import Loader

    def wrap(original: Callable[[Any, str], list[str]]) -> Callable[[Any, str], list[str]]:
        def list_available_services(self: Any, type_name: str) -> list[str]:
            key = (tuple(self.search_paths), type_name)
            with _lock:
                if key not in _listings:
                    _listings[key] = original(self, type_name)
                return list(_listings[key])

        return list_available_services

    replace_once(Loader, "list_available_services", wrap)
