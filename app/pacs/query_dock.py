"""The Query/Retrieve dock: node, search fields, studies (series under each, on expand), retrieve
with progress and Cancel (view of :class:`app.pacs.query_presenter.QueryPresenter`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.analysis.runner import QtJobRunner
from app.pacs.query_presenter import QueryPresenter, SearchForm, SeriesRow, StudyRow
from app.pacs.session import PacsSession
from app.progress import ProgressPanel, count_text

COLUMNS = ("Patient", "Patient ID", "Date", "Modality", "Description", "Accession", "Images")
UID_ROLE = Qt.ItemDataRole.UserRole


class QueryDock(QWidget):
    def __init__(self, session: PacsSession, open_folder: Callable[[Path], Any], open_nodes: Callable[[], Any],
                 parent: QWidget | None = None, dest_root: Path | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("pacsQueryDock")
        self.node = QComboBox(objectName="pacsNode")
        self.node.setMinimumContentsLength(14)
        nodes_button = QPushButton("Nodes…", objectName="pacsOpenNodes")
        nodes_button.clicked.connect(lambda: open_nodes())
        self.inputs = {
            "patient_id": QLineEdit(placeholderText="Patient ID", objectName="pacsPatientId"),
            "patient_name": QLineEdit(placeholderText="Name (prefix, * for all)", objectName="pacsPatientName"),
            "accession_number": QLineEdit(placeholderText="Accession number", objectName="pacsAccession"),
            "date_from": QLineEdit(placeholderText="From YYYY-MM-DD", objectName="pacsDateFrom"),
            "date_to": QLineEdit(placeholderText="To YYYY-MM-DD", objectName="pacsDateTo"),
            "modality": QLineEdit(placeholderText="Modality (CR, DX…)", objectName="pacsModality"),
        }
        self.search_button = QPushButton("Search", objectName="pacsSearch")
        self.search_button.setDefault(True)
        grid = QGridLayout()
        node_row = QHBoxLayout()
        node_row.addWidget(self.node, 1)
        node_row.addWidget(nodes_button)
        grid.addWidget(QLabel("Node"), 0, 0)
        grid.addLayout(node_row, 0, 1, 1, 2)
        grid.addWidget(self.inputs["patient_id"], 0, 3)
        grid.addWidget(self.inputs["patient_name"], 0, 4)
        grid.addWidget(self.inputs["accession_number"], 0, 5)
        grid.addWidget(QLabel("Study date"), 1, 0)
        grid.addWidget(self.inputs["date_from"], 1, 1)
        grid.addWidget(self.inputs["date_to"], 1, 2)
        grid.addWidget(self.inputs["modality"], 1, 3)
        grid.addWidget(self.search_button, 1, 5)
        for column in range(1, 6):
            grid.setColumnStretch(column, 2 if column >= 3 else 1)

        self.tree = QTreeWidget(objectName="pacsResults")
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        self.tree.setMinimumHeight(self.fontMetrics().height() * 12)  # about ten rows of results
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        for column, width in ((0, 190), (1, 150), (2, 90), (3, 80), (5, 100), (6, 60)):
            self.tree.setColumnWidth(column, width)

        self.method = QComboBox(objectName="pacsMethod")
        self.retrieve_button = QPushButton("Retrieve selected", objectName="pacsRetrieve")
        self.progress = ProgressPanel(formatter=count_text, cancel_tooltip="Stop the retrieve (nothing partial is kept)",
                                      object_name="pacsProgress")
        self.message = QLabel(objectName="pacsMessage", wordWrap=True)
        self.method.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        bottom = QHBoxLayout()
        bottom.addWidget(QLabel("Retrieve by"))
        bottom.addWidget(self.method)
        bottom.addWidget(self.retrieve_button)
        bottom.addWidget(self.progress, 1)
        bottom.addStretch(0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(grid)
        layout.addWidget(self.tree, 1)
        layout.addLayout(bottom)
        layout.addWidget(self.message)

        self.presenter = QueryPresenter(self, QtJobRunner(owner=self), session, open_folder, dest_root)
        self._updating = False
        self.node.currentTextChanged.connect(lambda name: None if self._updating else self.presenter.choose_node(name))
        self.method.currentIndexChanged.connect(
            lambda _i: None if self._updating else self.presenter.choose_method(self.method.currentData()))
        self.search_button.clicked.connect(self.search)
        for line in self.inputs.values():
            line.returnPressed.connect(self.search)
        self.retrieve_button.clicked.connect(self.retrieve_selected)
        self.tree.itemExpanded.connect(self._expanded)
        self.tree.itemDoubleClicked.connect(lambda item, _c: self.retrieve_selected() if item.parent() is None else None)
        self.presenter.refresh_nodes()

    # -- user intent -------------------------------------------------------------------------------
    def form(self) -> SearchForm:
        return SearchForm(**{key: line.text() for key, line in self.inputs.items()})

    def search(self) -> bool:
        return self.presenter.search(self.form())

    def selected_studies(self) -> list[str]:
        """The studies of the selected rows (a selected series stands for its study)."""
        items = self.tree.selectedItems()
        return [str((item.parent() or item).data(0, UID_ROLE)) for item in items]

    def retrieve_selected(self) -> bool:
        return self.presenter.retrieve(self.selected_studies())

    def _expanded(self, item: QTreeWidgetItem) -> None:
        if item.parent() is None:
            self.presenter.expand(str(item.data(0, UID_ROLE)))

    # -- QueryView ---------------------------------------------------------------------------------
    def show_nodes(self, names: list[str], selected: int) -> None:
        self._updating = True
        self.node.clear()
        self.node.addItems(names)
        self.node.setCurrentIndex(selected)
        self._updating = False

    def show_methods(self, methods: list[tuple[str, str]], selected: int) -> None:
        self._updating = True
        self.method.clear()
        for key, label in methods:
            self.method.addItem(label, key)
        self.method.setCurrentIndex(selected)
        self._updating = False

    def show_studies(self, rows: list[StudyRow]) -> None:
        self.tree.clear()
        for row in rows:
            item = QTreeWidgetItem([row.patient, row.patient_id, row.date, row.modalities, row.description,
                                    row.accession, row.instances])
            item.setData(0, UID_ROLE, row.study_uid)
            item.setToolTip(0, f"Study {row.study_uid}")
            item.setChildIndicatorPolicy(QTreeWidgetItem.ChildIndicatorPolicy.ShowIndicator)
            item.setTextAlignment(6, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.tree.addTopLevelItem(item)

    def study_item(self, study_uid: str) -> QTreeWidgetItem | None:
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.data(0, UID_ROLE) == study_uid:
                return item
        return None

    def show_series(self, study_uid: str, rows: list[SeriesRow] | None) -> None:
        item = self.study_item(study_uid)
        if item is None:
            return
        item.takeChildren()
        if rows is None:
            item.addChild(QTreeWidgetItem(["Loading series…"]))
            return
        for row in rows:
            child = QTreeWidgetItem([f"Series {row.number or '?'}", "", "", row.modality, row.description, "",
                                     row.instances])
            child.setData(0, UID_ROLE, row.series_uid)
            child.setTextAlignment(6, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            item.addChild(child)
        if not rows:
            item.setChildIndicatorPolicy(QTreeWidgetItem.ChildIndicatorPolicy.DontShowIndicatorWhenChildless)

    def show_message(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #c0392b;" if error else "")

    def bind_progress(self, handle: Any, message: str) -> None:
        self.progress.bind(handle, message)

    def set_enabled(self, search: bool, retrieve: bool) -> None:
        self.search_button.setEnabled(search)
        self.retrieve_button.setEnabled(retrieve)
        self.method.setEnabled(retrieve)

    def shutdown(self) -> None:
        self.presenter.shutdown()
