"""The hashes that name artefacts and record what made a model (standard library only, a leaf)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def config_hash(*blocks: Any) -> str:
    """16 hex digits of the blocks' canonical JSON (key order does not matter)."""
    return hashlib.sha256(json.dumps(blocks, sort_keys=True, default=str).encode()).hexdigest()[:16]


def settings_key(settings: dict[str, Any], keys: tuple[str, ...] | None = None) -> str:
    """The 10-hex key in an artefact's path: the hash of the settings that determine it (or of the
    subset `keys` of them: the generators a synthetic set is drawn from, say)."""
    return config_hash(settings if keys is None else {k: settings[k] for k in keys})[:10]


def artefact_key(method: Any, kind: str) -> str:
    """The key of a method's artefact of `kind` (its declared artefact settings)."""
    return settings_key(method.artefact_settings(kind))
