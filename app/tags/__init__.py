"""Metadata/tag panel. The exports load on first use (``app.tags.presenter`` imports without Qt)."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TagPanel": "app.tags.panel",
    "TagPresenter": "app.tags.presenter",
    "TagRow": "app.tags.rows",
    "dataset_rows": "app.tags.rows",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'app.tags' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
