"""The patient -> study -> series (-> instance) tree with thumbnails: the view.

What the tree holds, in which order, what each row says and which thumbnail it shows is decided
by :class:`app.browser.presenter.BrowserPresenter` (Qt-free); this widget draws the rows it is
told to insert, fills in thumbnails as they finish, and forwards expansion and selection.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QMimeData, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QMenu,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.browser.presenter import BrowserPresenter
from app.browser.texts import instance_text, patient_text, series_text, study_text
from app.browser.thumbnails import ThumbnailLoader
from ml.imaging.index import InstanceEntry, StudyIndex

__all__ = ["BrowserPanel", "instance_text", "patient_text", "series_text", "study_text"]

KEY_ROLE = Qt.ItemDataRole.UserRole + 1
ICON_SIZE = 64


def _placeholder(size: int, text: str = "") -> QIcon:
    pix = QPixmap(size, size)
    pix.fill(QColor("#101214"))
    painter = QPainter(pix)
    painter.setPen(QPen(QColor("#3a4048"), 1))
    painter.drawRect(0, 0, size - 1, size - 1)
    if text:
        painter.setPen(QColor("#8a94a0"))
        painter.drawText(pix.rect(), Qt.AlignmentFlag.AlignCenter, text)
    painter.end()
    return QIcon(pix)


SERIES_MIME = "application/x-cxr-studio-image-path"  # a series/instance dragged into a viewport


class _DragTree(QTreeWidget):
    """The tree; dragging a series or instance row carries the path of its image (SERIES_MIME)."""

    def __init__(self, entry_for: Callable[[str | None], InstanceEntry | None]):
        super().__init__()
        self._entry_for = entry_for
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)

    def mimeTypes(self) -> list[str]:  # noqa: N802 - Qt override
        return [SERIES_MIME]

    def mimeData(self, items) -> QMimeData:  # noqa: N802 - Qt override
        mime = QMimeData()
        entry = self._entry_for(items[0].data(0, KEY_ROLE)) if items else None
        if entry is not None and entry.is_image:
            mime.setData(SERIES_MIME, entry.path.encode("utf-8"))
        return mime


class BrowserPanel(QWidget):
    """Shows indexed studies; emits ``instanceSelected(InstanceEntry)`` on selection."""

    instanceSelected = Signal(object)
    exportRequested = Signal(list, str)  # the DICOM files of a row and a default name: "Export anonymised…"

    def __init__(self, thumbnails: ThumbnailLoader | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("browserPanel")
        self.thumbnails = thumbnails or ThumbnailLoader(parent=self)
        self.thumbnails.ready.connect(self._thumbnail_ready)
        self.thumbnails.failed.connect(self._thumbnail_failed)
        self.caption = QLabel("Drop DICOM files, folders or ZIPs here")
        self.caption.setObjectName("panelCaption")
        self.caption.setWordWrap(True)
        self.tree = _DragTree(lambda key: self.presenter.entry_for(key))
        self.tree.setObjectName("browserTree")
        self.tree.setHeaderHidden(True)
        self.tree.setIconSize(QSize(ICON_SIZE, ICON_SIZE))
        self.tree.setIndentation(14)
        self.tree.setAnimated(False)
        self.tree.setUniformRowHeights(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addWidget(self.caption)
        layout.addWidget(self.tree)
        self._items: dict[str, QTreeWidgetItem] = {}  # key -> item
        self._by_path: dict[str, list[QTreeWidgetItem]] = {}  # image path -> items showing it
        self._placeholder = _placeholder(ICON_SIZE)
        self._no_image = _placeholder(ICON_SIZE, "no image")
        self._broken = _placeholder(ICON_SIZE, "error")
        self.presenter = BrowserPresenter(self)
        self.tree.currentItemChanged.connect(self._current_changed)
        self.tree.itemExpanded.connect(lambda item: self.presenter.expanded(item.data(0, KEY_ROLE)))
        self.tree.itemCollapsed.connect(lambda item: self.presenter.collapsed(item.data(0, KEY_ROLE)))
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        self._exporter = None  # app.browser.export.AnonymisedExporter, made on first use
        # path of a results object (SR, Parametric Map) -> the SOP Instance UID of its image, or None;
        # set by app.viewer.dicom_menu: selecting such a row shows its image (with the result over it)
        self.result_reference: Callable[[str], str | None] | None = None
        self.exportRequested.connect(lambda files, name: self.exporter().ask(files, name))

    @property
    def index(self) -> StudyIndex:
        return self.presenter.index

    # -- what the presenter asks for (BrowserView) -------------------------------------------------
    def insert_row(self, parent: str | None, position: int, key: str) -> None:
        item = QTreeWidgetItem()
        item.setData(0, KEY_ROLE, key)
        if parent is None:
            self.tree.insertTopLevelItem(position, item)
        else:
            self._items[parent].insertChild(position, item)
        self._items[key] = item

    def set_row(self, key: str, text: str, tooltip: str) -> None:
        item = self._items[key]
        item.setText(0, text)
        if tooltip:
            item.setToolTip(0, tooltip)

    def expand_row(self, key: str) -> None:
        self._items[key].setExpanded(True)

    def show_thumbnail(self, key: str, path: str) -> None:
        item = self._items[key]
        self._forget_icon(item)
        item.setData(0, KEY_ROLE + 1, path)
        self._by_path.setdefault(path, []).append(item)
        cached = self.thumbnails.icon(path)
        item.setIcon(0, cached or self._placeholder)
        if cached is None:
            self.thumbnails.request(path)

    def show_placeholder(self, key: str, image: bool) -> None:
        item = self._items[key]
        self._forget_icon(item)
        item.setData(0, KEY_ROLE + 1, "")
        item.setIcon(0, self._placeholder if image else self._no_image)

    def clear_rows(self) -> None:
        self.thumbnails.clear()
        self.tree.clear()
        self._items.clear()
        self._by_path.clear()

    def set_caption(self, text: str) -> None:
        self.caption.setText(text)

    def _forget_icon(self, item: QTreeWidgetItem) -> None:
        old = item.data(0, KEY_ROLE + 1)
        if old and item in self._by_path.get(old, []):
            self._by_path[old].remove(item)

    def _thumbnail_ready(self, path: str, icon: QIcon) -> None:
        for item in self._by_path.get(path, []):
            item.setIcon(0, icon)

    def _thumbnail_failed(self, path: str, _message: str) -> None:
        for item in self._by_path.get(path, []):
            item.setIcon(0, self._broken)

    # -- filling (forwarded to the presenter) ------------------------------------------------------
    def add_instances(self, entries: list[InstanceEntry]) -> list[InstanceEntry]:
        """Add entries (duplicates are ignored); returns the ones that were new."""
        return self.presenter.add_instances(entries)

    def add_errors(self, errors: list[tuple[str, str]]) -> None:
        self.presenter.add_errors(errors)

    def clear(self) -> None:
        self.presenter.clear()

    # -- selection ---------------------------------------------------------------------------------
    def entry_for(self, item: QTreeWidgetItem | None) -> InstanceEntry | None:
        """The instance an item stands for (a series: its first image, else its first file)."""
        return self.presenter.entry_for(item.data(0, KEY_ROLE)) if item is not None else None

    def _current_changed(self, current: QTreeWidgetItem | None, _previous: QTreeWidgetItem | None) -> None:
        entry = self.entry_for(current)
        if entry is not None and self.result_reference is not None:
            target = self.presenter.image_of_result(entry, self.result_reference)
            if target is not None and self.select_path(target.path):
                return  # its image is selected instead (and emitted by that selection)
        if entry is not None:
            self.instanceSelected.emit(entry)

    def select_path(self, path: str) -> bool:
        """Select the row showing ``path`` (its instance row, else its series row)."""
        key = self.presenter.key_for_path(path)
        item = self._items.get(key) if key is not None else None
        if item is None:
            return False
        self.tree.setCurrentItem(item)
        self.tree.scrollToItem(item)
        return True

    # -- context menu ------------------------------------------------------------------------------
    def context_menu_for(self, item: QTreeWidgetItem | None) -> QMenu:
        """The row's context menu: "Export anonymised…" (disabled without DICOM files under it)."""
        from app.browser.export import EXPORT_ACTION_TEXT

        menu = QMenu(self)
        key = item.data(0, KEY_ROLE) if item is not None else None
        files = self.presenter.export_files(key)
        action = menu.addAction(EXPORT_ACTION_TEXT)
        action.setObjectName("browserExportAnonymised")
        action.setEnabled(bool(files))
        action.triggered.connect(lambda: self.exportRequested.emit(files, self.presenter.export_name(key)))
        return menu

    def _context_menu(self, pos) -> None:  # noqa: ANN001 - QPoint
        item = self.tree.itemAt(pos)
        if item is not None:
            self.context_menu_for(item).exec(self.tree.viewport().mapToGlobal(pos))

    def exporter(self):  # noqa: ANN201 - AnonymisedExporter
        if self._exporter is None:
            from app.browser.export import AnonymisedExporter
            from app.progress import ProgressPanel, count_text

            self.export_progress = ProgressPanel(self, formatter=count_text, cancel_tooltip="Stop the export",
                                                 object_name="exportProgress")
            self.layout().addWidget(self.export_progress)
            self._exporter = AnonymisedExporter(self)
            self._exporter.done.connect(self.caption.setText)
            self._exporter.started.connect(lambda job: self.export_progress.bind(job, "Exporting anonymised"))
        return self._exporter

    def current_entry(self) -> InstanceEntry | None:
        return self.entry_for(self.tree.currentItem())

    def row_texts(self) -> list[str]:
        """Every row's text as the tree shows it, depth first (for tests and accessibility checks)."""
        out: list[str] = []

        def walk(item: QTreeWidgetItem) -> None:
            out.append(item.text(0))
            for i in range(item.childCount()):
                walk(item.child(i))

        for i in range(self.tree.topLevelItemCount()):
            walk(self.tree.topLevelItem(i))
        return out
