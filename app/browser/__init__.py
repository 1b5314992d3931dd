"""Patient/study/series browser: tree, thumbnails, indexing and decoding workers, drag-and-drop.

The exports load on first use, so ``app.browser.presenter`` (Qt-free) imports without Qt.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "local_paths": "app.browser.dnd",
    "IndexController": "app.browser.indexer",
    "ImageLoader": "app.browser.loader",
    "ThumbnailLoader": "app.browser.thumbnails",
    "make_thumbnail": "app.browser.thumbnails",
    "BrowserPanel": "app.browser.tree",
    "BrowserPresenter": "app.browser.presenter",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'app.browser' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
