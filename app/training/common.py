"""Small widgets shared by the wizard pages: message label, spin boxes, thumbnail gallery."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QSpinBox,
    QWidget,
)

from app.browser.thumbnails import make_thumbnail
from app.workers import Job, make_pool

PATH_ROLE = Qt.ItemDataRole.UserRole


class MessageLabel(QLabel):
    """A word-wrapped line for information (grey) or a problem (red)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.is_error = False

    def info(self, text: str) -> None:
        self.is_error = False
        self.setStyleSheet("color: #444;")
        self.setText(text)

    def error(self, text: str) -> None:
        self.is_error = True
        self.setStyleSheet("color: #b00020; font-weight: bold;")
        self.setText(text)


def spin(lo: int, hi: int, value: int, suffix: str = "", special: str = "", tip: str = "") -> QSpinBox:
    w = QSpinBox()
    w.setRange(lo, hi)
    w.setValue(value)
    if suffix:
        w.setSuffix(suffix)
    if special:
        w.setSpecialValueText(special)
    if tip:
        w.setToolTip(tip)
    return w


def dspin(lo: float, hi: float, value: float, decimals: int = 3, step: float = 0.01, suffix: str = "",
          tip: str = "") -> QDoubleSpinBox:  # fmt: skip
    w = QDoubleSpinBox()
    w.setDecimals(decimals)
    w.setRange(lo, hi)
    w.setSingleStep(step)
    w.setValue(value)
    if suffix:
        w.setSuffix(suffix)
    if tip:
        w.setToolTip(tip)
    return w


def combo(items: Sequence[tuple[str, Any]], current: Any = None, tip: str = "") -> QComboBox:
    """A combo box of (text, data) pairs with ``current`` (data) selected."""
    w = QComboBox()
    for text, data in items:
        w.addItem(text, data)
    if current is not None:
        w.setCurrentIndex(max(0, w.findData(current)))
    if tip:
        w.setToolTip(tip)
    return w


def set_data(w: QComboBox, data: Any) -> None:
    i = w.findData(data)
    if i >= 0:
        w.setCurrentIndex(i)


def _thumbnail(path: str, size: int) -> Any:
    # make_thumbnail is imported at module level: a first import inside a pool thread stalled
    # (10 s) while the GUI thread spun in QTest.qWait, which holds the GIL; app.exec() does not
    return make_thumbnail(path, size)


class Gallery(QListWidget):
    """Thumbnails of image files with captions, decoded on a one-thread pool.

    ``activated_path(path)`` fires on double-click (or Enter) on an item.
    """

    activated_path = Signal(str)

    def __init__(
        self, size: int = 96, parent: QWidget | None = None, pool: QThreadPool | None = None
    ) -> None:
        super().__init__(parent)
        self.size = size
        self.pool = pool or make_pool(1, "training-thumbnails")
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setIconSize(QSize(size, size))
        self.setGridSize(QSize(size + 36, size + 44))
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setWordWrap(True)
        self.setUniformItemSizes(True)
        self.generation = 0
        self.pending = 0
        self.itemActivated.connect(self._activated)
        self.itemDoubleClicked.connect(self._activated)

    def _activated(self, item: QListWidgetItem) -> None:
        path = item.data(PATH_ROLE)
        if path:
            self.activated_path.emit(str(path))

    def set_items(self, entries: Sequence[tuple[str, str, str]]) -> None:
        """``entries``: (path, caption, tooltip). Thumbnails fill in as they are decoded."""
        self.clear()
        self.generation += 1
        gen = self.generation
        self.pending = len(entries)
        placeholder = QPixmap(self.size, self.size)
        placeholder.fill(Qt.GlobalColor.lightGray)
        for path, caption, tip in entries:
            item = QListWidgetItem(QIcon(placeholder), caption)
            item.setData(PATH_ROLE, path)
            item.setToolTip(tip or Path(path).name)
            self.addItem(item)
            job = Job(self._loader(path), "making a thumbnail", self.pool)
            job.signals.finished.connect(lambda img, it=item, g=gen: self._ready(g, it, img))
            job.signals.error.connect(lambda _msg, it=item, g=gen: self._failed(g, it))
            job.start()

    def _loader(self, path: str) -> Callable[..., Any]:
        size = self.size
        return lambda _progress, _cancel: _thumbnail(path, size)

    def _ready(self, gen: int, item: QListWidgetItem, image: Any) -> None:
        if gen != self.generation:
            return
        self.pending -= 1
        try:
            item.setIcon(QIcon(QPixmap.fromImage(image)))
        except RuntimeError:  # the item was deleted meanwhile
            pass

    def _failed(self, gen: int, item: QListWidgetItem) -> None:
        if gen != self.generation:
            return
        self.pending -= 1
        try:
            item.setText(item.text() + "\n(unreadable)")
        except RuntimeError:
            pass

    def paths(self) -> list[str]:
        return [str(self.item(i).data(PATH_ROLE)) for i in range(self.count())]
