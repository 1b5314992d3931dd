"""Files, folders and ZIPs dragged onto a window are opened: a mixin for the main window."""

from __future__ import annotations

import os

from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent

from app.browser import local_paths


class FileDropMixin:
    """Accepts drags that carry local paths and hands a drop to ``self.open_paths(paths)``."""

    def open_paths(self, paths: list[str | os.PathLike[str]]) -> int | None:  # provided by the window
        raise NotImplementedError

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if local_paths(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:  # noqa: N802
        if local_paths(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        paths = local_paths(event.mimeData())
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.open_paths(list(paths))
