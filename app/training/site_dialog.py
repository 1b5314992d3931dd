"""Training > "Evaluate on my data…": check and calibrate an installed model on a site's own labelled
folder/CSV (``cxr calibrate`` in a dialog). The rules are in the Qt-free
:class:`app.training.site_presenter.SitePresenter`; this view renders and forwards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.progress import ProgressPanel, percent_text
from app.training.site_presenter import (
    SiteOutcome,
    SitePresenter,
    SiteRequest,
    SiteSettings,
    run_site_calibration,
)
from app.workers import Job
from ml import DISCLAIMER


class SiteDialog(QDialog):
    """Model combo, data picker, target sensitivity, Run/Cancel, progress, results and the report."""

    def __init__(self, parent: QWidget | None = None, *, use_version: Callable[[str], bool] | None = None,
                 models: Callable[[], list[Any]] | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        self.setObjectName("siteEvaluationDialog")
        self.setWindowTitle("Evaluate on my data")
        self.resize(980, 760)
        self._use_version = use_version
        self.job: Job | None = None

        self.model_combo = QComboBox(objectName="siteModel")
        self.data_edit = QLineEdit(objectName="siteData", placeholderText="a labelled folder (one sub-folder per class) or a CSV")  # fmt: skip
        self.folder_button = QPushButton("Folder…", objectName="siteChooseFolder")
        self.csv_button = QPushButton("CSV…", objectName="siteChooseCsv")
        self.target_check = QCheckBox(
            "Operating points at a target sensitivity of", objectName="siteUseTarget"
        )
        self.target_spin = QDoubleSpinBox(objectName="siteTarget", decimals=2, minimum=0.5, maximum=0.99,
                                          singleStep=0.01, value=0.9)  # fmt: skip
        self.target_spin.setEnabled(False)
        self.target_note = QLabel("(otherwise Youden's J)")
        self.run_button = QPushButton("Run", objectName="siteRun")
        self.run_button.setDefault(True)
        self.progress = ProgressPanel(self, formatter=percent_text, cancel_tooltip="Stop the check (saves nothing)",
                                      object_name="siteProgress")  # fmt: skip
        self.message = QLabel(objectName="siteMessage", wordWrap=True)
        self.headline = QLabel(objectName="siteHeadline", wordWrap=True)
        self.table = QTableWidget(0, 3, objectName="siteResults")
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        for column in (1, 2):
            self.table.horizontalHeader().setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)
        self.table.setWordWrap(True)
        self.report = QLabel(objectName="siteReport", alignment=Qt.AlignmentFlag.AlignCenter)
        self.report_scroll = QScrollArea(widgetResizable=True)
        self.report_scroll.setWidget(self.report)
        self.use_button = QPushButton("Use this version", objectName="siteUseVersion")
        self.use_button.setToolTip("Choose the new version in the analysis panel")
        self.use_button.setEnabled(False)
        self.close_button = QPushButton("Close", objectName="siteClose")

        form = QFormLayout()
        form.addRow("Model:", self.model_combo)
        data_row = QHBoxLayout()
        data_row.addWidget(self.data_edit, 1)
        data_row.addWidget(self.folder_button)
        data_row.addWidget(self.csv_button)
        form.addRow("Labelled data:", data_row)
        target_row = QHBoxLayout()
        target_row.addWidget(self.target_check)
        target_row.addWidget(self.target_spin)
        target_row.addWidget(self.target_note)
        target_row.addStretch(1)
        form.addRow("", target_row)
        run_row = QHBoxLayout()
        run_row.addWidget(self.run_button)
        run_row.addWidget(self.progress, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(QLabel(DISCLAIMER, wordWrap=True), 1)
        buttons.addWidget(self.use_button)
        buttons.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(run_row)
        layout.addWidget(self.message)
        layout.addWidget(self.headline)
        results = QHBoxLayout()
        results.addWidget(self.table, 1)
        results.addWidget(self.report_scroll, 1)
        layout.addLayout(results, 1)
        layout.addLayout(buttons)

        self.presenter = SitePresenter(self, models) if models is not None else SitePresenter(self)
        self.model_combo.currentIndexChanged.connect(lambda _i: self.presenter.settings_changed())
        self.data_edit.textChanged.connect(lambda _t: self.presenter.settings_changed())
        self.target_check.toggled.connect(self._target_toggled)
        self.folder_button.clicked.connect(self._choose_folder)
        self.csv_button.clicked.connect(self._choose_csv)
        self.run_button.clicked.connect(self.presenter.run)
        self.use_button.clicked.connect(self.use_new_version)
        self.close_button.clicked.connect(self.close)
        self.presenter.refresh_models()

    # ------------------------------------------------------------------ SiteView
    def read_settings(self) -> SiteSettings:
        return SiteSettings(self.model_combo.currentData() or None, self.data_edit.text().strip(),
                            self.target_check.isChecked(), round(self.target_spin.value(), 4))  # fmt: skip

    def show_models(self, items: list[tuple[str, str]], selected: str | None) -> None:
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for name, text in items:
            self.model_combo.addItem(text, name)
        index = self.model_combo.findData(selected)
        self.model_combo.setCurrentIndex(max(index, 0) if items else -1)
        self.model_combo.blockSignals(False)

    def show_message(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #c0392b;" if error else "")

    def set_state(self, can_run: bool, busy: bool) -> None:
        self.run_button.setEnabled(can_run and not busy)
        for w in (self.model_combo, self.data_edit, self.folder_button, self.csv_button, self.target_check):
            w.setEnabled(not busy)
        self.target_spin.setEnabled(not busy and self.target_check.isChecked())
        self.use_button.setEnabled(not busy and self.presenter.new_version() is not None)

    def show_outcome(self, outcome: SiteOutcome | None) -> None:
        self.table.setRowCount(0)
        self.headline.setText(outcome.headline if outcome else "")
        self.report.clear()
        if outcome is None:
            return
        self.table.setHorizontalHeaderLabels(outcome.columns)
        self.table.setRowCount(len(outcome.rows))
        for r, row in enumerate(outcome.rows):
            for c, text in enumerate(row):
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.table.resizeRowsToContents()
        pixmap = QPixmap(outcome.report_path)
        if not pixmap.isNull():
            self.report.setPixmap(
                pixmap.scaledToWidth(min(pixmap.width(), 560), Qt.TransformationMode.SmoothTransformation)
            )
        self.use_button.setText(f"Use {outcome.new_model}")

    def start_job(self, request: SiteRequest) -> None:
        p = self.presenter
        job = Job(lambda progress, cancel: run_site_calibration(request, progress, cancel),
                  "checking the model on the site data")  # fmt: skip
        job.signals.finished.connect(p.finished)
        job.signals.error.connect(p.failed)
        job.signals.cancelled.connect(p.cancelled)
        job.signals.done.connect(p.done)
        self.job = job
        self.progress.bind(job, "Checking")
        job.start()

    # ------------------------------------------------------------------ user actions
    def _target_toggled(self, on: bool) -> None:
        self.target_spin.setEnabled(on)
        self.presenter.settings_changed()

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(
            self, "Labelled folder (one sub-folder per class)", self.data_edit.text()
        )
        if path:
            self.data_edit.setText(path)

    def _choose_csv(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Labels CSV", self.data_edit.text(), "CSV files (*.csv);;All files (*)"
        )
        if path:
            self.data_edit.setText(path)

    def use_new_version(self) -> bool:
        """Select the new version in the analysis panel (False when there is none to select it in)."""
        name = self.presenter.new_version()
        if name is None or self._use_version is None:
            return False
        ok = bool(self._use_version(name))
        self.show_message(f"'{name}' is chosen in the analysis panel." if ok else
                          "The analysis panel is not open, so the new version could not be chosen there.",
                          error=not ok)  # fmt: skip
        return ok

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        if self.job is not None and self.job.running:
            self.job.cancel()
        super().closeEvent(event)


__all__ = ["SiteDialog"]
