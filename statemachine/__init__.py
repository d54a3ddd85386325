"""The workflow definition (ASL JSON) and its deploy-time substitutions.

Like SAM's DefinitionSubstitutions: the file stays valid, diffable JSON with `${Name}`
placeholders, and `render` fills them in — refusing to leave any behind.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

DEFINITION_PATH = Path(__file__).with_name("workflow.asl.json")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z][A-Za-z0-9_]*)\}")


class UnresolvedPlaceholder(ValueError):
    """A `${...}` in the definition has no substitution (or a value brought one in)."""


def load_definition(path: Path = DEFINITION_PATH) -> str:
    return path.read_text(encoding="utf-8")


def placeholders(definition: str) -> set[str]:
    return set(_PLACEHOLDER.findall(definition))


def render(definition: str, substitutions: Mapping[str, str]) -> str:
    """The definition with every `${Name}` replaced; raises UnresolvedPlaceholder otherwise."""
    missing = placeholders(definition) - set(substitutions)
    if missing:
        raise UnresolvedPlaceholder(f"no substitution for {sorted(missing)}")
    # Values land inside JSON strings: escape them as JSON would.
    rendered = _PLACEHOLDER.sub(lambda m: json.dumps(str(substitutions[m.group(1)]))[1:-1], definition)
    if "${" in rendered:
        raise UnresolvedPlaceholder(f"`${{` left in the rendered definition near {rendered[rendered.index('${'):][:40]!r}")
    json.loads(rendered)
    return rendered
