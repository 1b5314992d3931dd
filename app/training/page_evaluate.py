"""Wizard page 5: test-split metrics, confusion matrix, ROC curves, reliability diagram and calibration,
the operating point, misclassified images, and saving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
    QWizardPage,
)

from app.training.common import Gallery, MessageLabel
from app.training.evaluate_presenter import (
    COLUMNS,
    AnalysisLink,
    EvaluatePresenter,
    EvaluationView,
    HeatmapSpec,
)
from app.training.plots import HeatmapTable, ReliabilityPlot, RocPlot
from app.training.session import TrainingSession
from app.workers import Job

ROW_HEIGHT = 26


def _install(model_path: Path, name: str):  # noqa: ANN202
    def run(_progress: Any, _cancel: Any) -> Any:
        from ml.lazy import ensure_torch
        from ml.models.library import install_model_file

        ensure_torch()  # installing checks that the file loads

        return install_model_file(model_path, name=name or None)

    return run


class EvaluatePage(QWizardPage):
    """The view of :class:`EvaluatePresenter`."""

    def __init__(self, session: TrainingSession, link: AnalysisLink | None = None) -> None:
        super().__init__()
        self.setTitle("5. Evaluate and save")
        self.setSubTitle("How the model does on the test images it never saw during training. "
                         "Research use only: not for diagnostic use.")  # fmt: skip
        self.session = session
        self.save_job: Job | None = None
        self.presenter = EvaluatePresenter(self, session, link)
        self._build()

    def _build(self) -> None:
        self.headline = QLabel("")
        self.headline.setObjectName("evalHeadline")
        self.headline.setWordWrap(True)
        self.headline.setStyleSheet("font-size: 11pt;")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("metricsTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(ROW_HEIGHT)
        self.table.setToolTip("–: not defined (e.g. precision when no image was predicted as that class)")
        self.confusion = HeatmapTable("#1f5fa8")
        self.confusion.setObjectName("confusionMatrix")
        self.confusion_label = QComboBox()  # multi-label: which label's 2x2 matrix
        self.confusion_label.setVisible(False)
        self.prf = HeatmapTable("#2e8540")
        self.roc = RocPlot()
        self.reliability = ReliabilityPlot()
        self.reliability.setObjectName("reliabilityPlot")
        self.calibration = QLabel("")  # temperature, ECE before/after (which split), operating point
        self.calibration.setObjectName("evalCalibration")
        self.calibration.setWordWrap(True)
        self.calibration.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.gallery = Gallery(96)
        self.gallery.setObjectName("misclassified")
        self.gallery_note = QLabel("Double-click an image to open it in the viewer.")
        self.gallery_note.setWordWrap(True)

        cm_box = QWidget()
        cm = QVBoxLayout(cm_box)
        cm.setContentsMargins(0, 0, 0, 0)
        cm.addWidget(QLabel("Confusion matrix (rows: true class, columns: predicted)"))
        cm.addWidget(self.confusion_label)
        cm.addWidget(self.confusion, 1)
        prf_box = QWidget()
        pl = QVBoxLayout(prf_box)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.addWidget(QLabel("Precision, recall and F1 per class"))
        pl.addWidget(self.prf, 1)
        overview = QWidget()
        grid = QGridLayout(overview)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(cm_box, 0, 0)
        grid.addWidget(prf_box, 0, 1)
        grid.addWidget(self.roc, 0, 2)
        grid.addWidget(self.reliability, 0, 3)
        for column in range(4):
            grid.setColumnStretch(column, 1)
        gal = QWidget()
        gl = QVBoxLayout(gal)
        gl.addWidget(self.gallery_note)
        gl.addWidget(self.gallery, 1)
        self.tabs = QTabWidget()
        self.tabs.addTab(overview, "Charts")
        self.tabs.addTab(gal, "Misclassified images")

        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("model name in the library")
        self.save_button = QPushButton("Save to model library")
        self.save_button.setObjectName("saveButton")
        self.message = MessageLabel()
        self.message.setObjectName("evalMessage")
        save_row = QHBoxLayout()
        save_row.addWidget(QLabel("Name"))
        save_row.addWidget(self.name_edit, 1)
        save_row.addWidget(self.save_button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.headline)
        layout.addWidget(self.calibration)
        layout.addWidget(self.table)
        layout.addWidget(self.tabs, 1)
        layout.addLayout(save_row)
        layout.addWidget(self.message)
        p = self.presenter
        self.save_button.clicked.connect(self.save)
        self.gallery.activated_path.connect(p.open_image)
        self.confusion_label.currentTextChanged.connect(p.confusion_label_chosen)

    @property
    def metrics(self) -> dict[str, Any] | None:
        return self.presenter.metrics

    @property
    def saved_name(self) -> str | None:
        return self.session.evaluation.saved_name

    def initializePage(self) -> None:  # noqa: N802 - Qt override
        self.presenter.page_shown()

    def save(self) -> None:
        self.presenter.save(self.name_edit.text())

    def open_image(self, path: str) -> None:
        self.presenter.open_image(path)

    # ------------------------------------------------------------------ EvaluateView
    def show_evaluation(self, e: EvaluationView) -> None:
        self.headline.setText(e.headline)
        self.table.setColumnCount(len(e.columns))
        self.table.setHorizontalHeaderLabels(e.columns)
        self.table.setRowCount(len(e.rows))
        self.table.setVerticalHeaderLabels(e.row_names)
        for i, values in enumerate(e.rows):
            for j, text in enumerate(values):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                self.table.setItem(i, j, item)
        height = self.table.horizontalHeader().sizeHint().height() + 2 * self.table.frameWidth()
        self.table.setFixedHeight(height + ROW_HEIGHT * len(e.rows) + 2)
        self.prf.set_matrix(e.prf.values, e.prf.rows, e.prf.cols, "{:.2f}", vmax=1.0)
        self.confusion_label.blockSignals(True)
        self.confusion_label.clear()
        self.confusion_label.addItems(e.confusion_labels)
        self.confusion_label.setVisible(bool(e.confusion_labels))
        self.confusion_label.blockSignals(False)
        if e.confusion is not None:
            self.show_confusion(e.confusion)
        elif e.confusion_labels:
            self.presenter.confusion_label_chosen(e.confusion_labels[0])
        self.roc.set_curves(e.roc, e.auroc)
        self.calibration.setText("\n".join(t for t in (e.calibration_text, e.operating_text) if t))
        self.calibration.setVisible(bool(e.calibration_text or e.operating_text))
        self.reliability.setVisible(e.reliability is not None)
        if e.reliability is not None:
            self.reliability.set_curves(e.reliability.title, e.reliability.curves)
        self.gallery.set_items(e.misclassified)
        self.tabs.setTabText(1, f"Misclassified images ({len(e.misclassified)})")

    def show_confusion(self, spec: HeatmapSpec) -> None:
        self.confusion.set_matrix(spec.values, spec.rows, spec.cols, row_norm=True)

    def show_message(self, text: str, error: bool = False) -> None:
        (self.message.error if error else self.message.info)(text)

    def show_saving(self, can_save: bool) -> None:
        self.save_button.setEnabled(can_save)

    def set_name(self, name: str) -> None:
        self.name_edit.setText(name)

    def start_save(self, model_path: Path, name: str) -> None:
        job = Job(_install(model_path, name), "saving the model into the library")
        job.signals.finished.connect(lambda m: self.presenter.saved(m.name, m.path))
        job.signals.error.connect(self.presenter.save_failed)
        self.save_job = job.start()
