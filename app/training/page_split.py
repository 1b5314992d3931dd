"""Wizard page 2: the patient-level train/validation/test split and what lands in each part."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWizardPage,
)

from app.training.common import MessageLabel, combo, spin
from app.training.session import TrainingSession
from app.training.split_presenter import PATIENT_SOURCES, SplitPresenter, SplitSettings, SplitTable
from app.workers import Job
from ml.training.config import SplitConfig


def _split_job(data: Any, config: SplitConfig, seed: int):  # noqa: ANN202
    from ml.training.splits import split_dataset

    return lambda _progress, _cancel: split_dataset(data, config, seed=seed)


class SplitPage(QWizardPage):
    """The view of :class:`SplitPresenter`."""

    def __init__(self, session: TrainingSession) -> None:
        super().__init__()
        self.setTitle("2. Split")
        self.setSubTitle(
            "Every image of one patient goes into the same part, so the model is tested on patients it has "
            "never seen. Classes are spread evenly over the parts."
        )
        self.job: Job | None = None
        self.presenter = SplitPresenter(self, session)
        self._build()

    def _build(self) -> None:
        self.train_pct = spin(1, 100, 70, " %")
        self.val_pct = spin(0, 99, 15, " %")
        self.test_pct = spin(0, 99, 15, " %")
        ratios = QHBoxLayout()
        for text, w in (("training", self.train_pct), ("validation", self.val_pct), ("test", self.test_pct)):
            ratios.addWidget(QLabel(text))
            ratios.addWidget(w)
        ratios.addStretch(1)
        self.patient_combo = combo(PATIENT_SOURCES, "auto")
        self.patient_arg = QLineEdit()
        self.patient_arg.setPlaceholderText("pattern or column name")
        self.patient_arg.setEnabled(False)
        prow = QHBoxLayout()
        prow.addWidget(self.patient_combo, 2)
        prow.addWidget(self.patient_arg, 1)
        self.seed = spin(0, 2**31 - 1, 0, tip="The same seed gives the same split")
        self.predefined = QCheckBox("Keep the split the dataset defines (e.g. chest_xray/train, val, test)")
        self.predefined.setChecked(True)
        self.balanced = QCheckBox("Balanced subset (the same number of patients in every class)")
        self.max_images = spin(0, 10_000_000, 0, " images", "all images", "Use at most this many images")
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
        form.addRow("Ratios", ratios)
        form.addRow("Patient IDs from", prow)
        form.addRow("Seed", self.seed)
        form.addRow("", self.predefined)
        form.addRow("", self.balanced)
        form.addRow("Maximum dataset size", self.max_images)

        self.level_label = QLabel("")
        self.level_label.setWordWrap(True)
        self.table = QTableWidget(0, 0)
        self.table.setObjectName("splitTable")
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.message = MessageLabel()
        self.message.setObjectName("splitMessage")
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.level_label)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.message)

        p = self.presenter
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(300)
        self.timer.timeout.connect(p.compute)
        for w in (self.train_pct, self.val_pct, self.test_pct, self.seed, self.max_images):
            w.valueChanged.connect(p.settings_changed)
        for c in (self.predefined, self.balanced):
            c.toggled.connect(p.settings_changed)
        self.patient_combo.currentIndexChanged.connect(p.patient_mode_changed)
        self.patient_arg.textChanged.connect(p.settings_changed)

    def initializePage(self) -> None:  # noqa: N802 - Qt override
        self.presenter.page_shown()

    def compute(self) -> None:
        self.presenter.compute()

    def isComplete(self) -> bool:  # noqa: N802 - Qt override
        return self.presenter.is_complete()

    # ------------------------------------------------------------------ SplitView
    def read_settings(self) -> SplitSettings:
        return SplitSettings(
            percent=[self.train_pct.value(), self.val_pct.value(), self.test_pct.value()],
            patient_mode=str(self.patient_combo.currentData()),
            patient_arg=self.patient_arg.text(),
            seed=self.seed.value(),
            predefined=self.predefined.isChecked(),
            balanced=self.balanced.isChecked(),
            max_images=self.max_images.value(),
        )

    def show_patient_argument(self, enabled: bool, placeholder: str) -> None:
        self.patient_arg.setEnabled(enabled)
        self.patient_arg.setPlaceholderText(placeholder)

    def show_message(self, text: str, error: bool = False) -> None:
        (self.message.error if error else self.message.info)(text)

    def show_table(self, table: SplitTable | None) -> None:
        if table is None:
            self.table.setRowCount(0)
            self.level_label.setText("")
            return
        self.table.setColumnCount(len(table.columns))
        self.table.setHorizontalHeaderLabels(table.columns)
        self.table.setRowCount(len(table.rows))
        for i, row in enumerate(table.rows):
            for j, text in enumerate(row):
                item = QTableWidgetItem(text)
                if j:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(i, j, item)
        self.level_label.setText(table.level)

    def schedule(self) -> None:
        self.timer.start()

    def pending(self) -> bool:
        return self.timer.isActive()

    def start_split(self, data: Any, config: SplitConfig, seed: int) -> None:
        self.timer.stop()
        p = self.presenter
        job = Job(_split_job(data, config, seed), "splitting the data")
        job.signals.finished.connect(p.split_ready)
        job.signals.error.connect(p.split_failed)
        job.signals.done.connect(p.split_done)
        self.job = job.start()

    def complete_changed(self) -> None:
        self.completeChanged.emit()
