"""The metadata/tag panel (view): every element of the dataset, searchable, sequences expandable.

The rows, the search text, which rows the search shows and the summary line belong to
:class:`app.tags.presenter.TagPresenter` (Qt-free); this widget draws them and debounces typing.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QHeaderView,
    QLabel,
    QLineEdit,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.tags.presenter import TagPresenter
from app.tags.rows import TagRow, dataset_rows

COLUMNS = ["Tag", "Name", "VR", "Value"]
SEARCH_ROLE = Qt.ItemDataRole.UserRole + 1


class TagPanel(QWidget):
    """Shows a pydicom Dataset as a tree. ``set_dataset(ds)``; ``search`` filters it."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("tagPanel")
        self.search = QLineEdit(placeholderText="Search keyword, tag or value…")
        self.search.setObjectName("tagSearch")
        self.search.setClearButtonEnabled(True)
        self.search.setAcceptDrops(False)  # dropped files go to the window, never into the search text
        self.summary = QLabel("No image selected")
        self.summary.setObjectName("panelCaption")
        self.tree = QTreeWidget()
        self.tree.setObjectName("tagTree")
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionBehavior(QTreeWidget.SelectionBehavior.SelectRows)
        header = self.tree.header()
        header.setStretchLastSection(True)
        header.setMinimumSectionSize(28)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        width = self.tree.fontMetrics().horizontalAdvance("(0000,0000)") + 28
        header.resizeSection(0, width)
        header.resizeSection(1, 150)
        self.tree.setIndentation(12)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addWidget(self.search)
        layout.addWidget(self.summary)
        layout.addWidget(self.tree)
        self._debounce = QTimer(self, singleShot=True, interval=120)
        self._debounce.timeout.connect(lambda: self.presenter.set_filter(self.search.text()))
        self.search.textChanged.connect(lambda _text: self._debounce.start())
        self._flat: list[QTreeWidgetItem] = []  # every item, depth first (as the presenter's flags)
        self.presenter = TagPresenter(self)

    # -- content -----------------------------------------------------------------------------------
    def clear(self, message: str = "No image selected") -> None:
        self.presenter.clear(message)

    def set_dataset(self, dataset: object | None, title: str = "", note: str = "") -> None:
        """Show a pydicom Dataset (None or a non-DICOM image: an explanatory line instead).
        ``note`` leads the summary line (e.g. why only the header is shown)."""
        if dataset is None:
            self.presenter.set_no_header(title)
            return
        self.set_rows(dataset_rows(dataset), title, note)

    def set_rows(self, rows: list[TagRow], title: str = "", note: str = "") -> None:
        self.presenter.set_rows(rows, note)

    # -- what the presenter asks for (TagView) -------------------------------------------------------
    def show_rows(self, rows: list[TagRow]) -> None:
        self._flat = []
        self.tree.setUpdatesEnabled(False)
        try:
            self.tree.clear()
            self.tree.addTopLevelItems([self._item(row) for row in rows])
        finally:
            self.tree.setUpdatesEnabled(True)

    def apply_filter(self, flags: list[tuple[bool, bool]]) -> None:
        for item, (visible, expand) in zip(self._flat, flags, strict=True):
            item.setHidden(not visible)
            if expand:
                item.setExpanded(True)

    def set_summary(self, text: str) -> None:
        self.summary.setText(text)

    def _item(self, row: TagRow) -> QTreeWidgetItem:
        item = QTreeWidgetItem([row.tag, row.name, row.vr, row.value])
        self._flat.append(item)
        item.setData(0, SEARCH_ROLE, row.search_text)
        item.setToolTip(3, row.value)
        if row.keyword:
            item.setToolTip(1, row.keyword)
        for child in row.children:
            item.addChild(self._item(child))
        return item

    # -- search ------------------------------------------------------------------------------------
    def set_filter(self, text: str) -> None:
        """Set the search text and filter now (the line edit debounces typing)."""
        self.search.setText(text)
        self._debounce.stop()
        self.presenter.set_filter(text)

    def visible_rows(self) -> list[tuple[str, str, str]]:
        """(tag, name, value) of every row not hidden by the filter, depth first (for tests)."""
        out: list[tuple[str, str, str]] = []

        def walk(item: QTreeWidgetItem) -> None:
            if item.isHidden():
                return
            out.append((item.text(0), item.text(1), item.text(3)))
            for i in range(item.childCount()):
                walk(item.child(i))

        for i in range(self.tree.topLevelItemCount()):
            walk(self.tree.topLevelItem(i))
        return out
