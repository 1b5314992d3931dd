"""The image view: pyqtgraph wrapped once (image, window/level, zoom, overlays, measurements).

``ImageViewer`` renders the evented display model ``DisplayState`` (Qt-free, in
``app.viewer.state``). The exports load on first use, so the model imports without Qt.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DisplayState": "app.viewer.state",
    "ImageViewer": "app.viewer.view",
    "Measurement": "app.viewer.measure",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'app.viewer' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
