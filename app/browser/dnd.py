"""Local paths out of drag-and-drop data."""

from __future__ import annotations

from PySide6.QtCore import QMimeData


def local_paths(mime: QMimeData | None) -> list[str]:
    """The local files/folders a drag carries (remote URLs are ignored), in order, deduplicated."""
    if mime is None or not mime.hasUrls():
        return []
    out: list[str] = []
    for url in mime.urls():
        if url.isLocalFile():
            path = url.toLocalFile()
            if path and path not in out:
                out.append(path)
    return out
