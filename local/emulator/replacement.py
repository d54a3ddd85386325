"""Replacing a function of a library we run (moto, botocore), once per process.

The seam's speed and fidelity fixes swap one function of moto or botocore for ours. Several are
installed from more than one place (the moto host, `make_server`, tests), so a replacement must be
installed at most once: a second install would wrap our own function again, or, for those that
hold state (a lock, a cache), split it in two. `replace_once` keeps the library's function on the
replacement, and `original` finds it again for the tests that check the library still works the
way the replacement assumes.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

ORIGINAL = "__scones_original__"


def original(owner: Any, name: str) -> Any:
    """The library's own owner.name, whether or not it has been replaced."""
    current = getattr(owner, name)
    return getattr(current, ORIGINAL, current)


def replace_once(owner: Any, name: str, wrap: Callable[[Any], Any]) -> None:
    """owner.name = wrap(owner.name), unless it is already a replacement (idempotent)."""
    current = getattr(owner, name)
    if hasattr(current, ORIGINAL):
        return
    replacement = wrap(current)
    setattr(replacement, ORIGINAL, current)
    setattr(owner, name, replacement)
