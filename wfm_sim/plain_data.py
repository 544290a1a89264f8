"""Config dataclasses read back from the plain data of a checkpoint's config.json."""

from __future__ import annotations

import dataclasses
from typing import Any


def require_known_keys(schema: type, values: dict[str, Any], kind: str) -> None:
    """Refuse ``values`` holding keys that are not fields of the dataclass ``schema``, naming
    them and the known ones (``kind``, e.g. "world-model", names the config in the message)."""
    known = {f.name for f in dataclasses.fields(schema)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {kind} config keys {unknown}; known: {sorted(known)}")
