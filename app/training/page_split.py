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
from app.workers import Job
from ml.training.config import SplitConfig, TrainConfig

PATIENT_SOURCES = [
    ("Automatic (DICOM PatientID, CSV column or known file names)", "auto"),
    ("DICOM PatientID", "dicom"),
    ("File-name pattern (regular expression)", "regex"),
    ("CSV column", "column"),
    ("None: each image is its own patient", "none"),
]
SPLIT_NAMES = {"train": "Training", "val": "Validation", "test": "Test"}


def _split_job(data: Any, config: SplitConfig, seed: int):  # noqa: ANN202
    from ml.training.splits import split_dataset

    return lambda _progress, _cancel: split_dataset(data, config, seed=seed)


class SplitPage(QWizardPage):
    def __init__(self, wizard: Any) -> None:
        super().__init__()
        self.wiz = wizard
        self.setTitle("2. Split")
        self.setSubTitle(
            "Every image of one patient goes into the same part, so the model is tested on patients it has "
            "never seen. Classes are spread evenly over the parts."
        )
        self.split: Any = None
        self.job: Job | None = None
        self._again = False
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

        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(300)
        self.timer.timeout.connect(self.compute)
        for w in (self.train_pct, self.val_pct, self.test_pct, self.seed, self.max_images):
            w.valueChanged.connect(self._changed)
        for c in (self.predefined, self.balanced):
            c.toggled.connect(self._changed)
        self.patient_combo.currentIndexChanged.connect(self._patient_mode)
        self.patient_arg.textChanged.connect(self._changed)

    def _patient_mode(self) -> None:
        mode = self.patient_combo.currentData()
        self.patient_arg.setEnabled(mode in ("regex", "column"))
        self.patient_arg.setPlaceholderText(
            r"e.g. (\d+)_\d+\.png" if mode == "regex" else "column name" if mode == "column" else ""
        )
        self._changed()

    def _changed(self, *_args: Any) -> None:
        self.split = None
        self.wiz.split = None
        self.completeChanged.emit()
        self.timer.start()

    def patient_id(self) -> str:
        mode = str(self.patient_combo.currentData())
        if mode in ("regex", "column"):
            return f"{mode}:{self.patient_arg.text().strip()}"
        return mode

    def apply(self, config: TrainConfig) -> None:
        pct = [self.train_pct.value(), self.val_pct.value(), self.test_pct.value()]
        total = sum(pct) or 1
        config.split = SplitConfig(
            ratios=[p / total for p in pct],
            patient_id=self.patient_id(),
            use_predefined=self.predefined.isChecked(),
            balanced=self.balanced.isChecked(),
            max_images=self.max_images.value(),
        )
        config.seed = self.seed.value()

    def initializePage(self) -> None:  # noqa: N802 - Qt override
        if self.split is None or self.wiz.split is None:
            self.compute()

    def compute(self) -> None:
        if self.job is not None:
            self._again = True
            return
        data = self.wiz.data
        if data is None:
            return
        self.timer.stop()
        config = TrainConfig()
        self.apply(config)
        self.split = None
        if self.patient_combo.currentData() in ("regex", "column") and not self.patient_arg.text().strip():
            self.message.error("Enter the file-name pattern or the column that holds the patient ID.")
            self.completeChanged.emit()
            return
        self.message.info("Splitting…")
        job = Job(_split_job(data, config.split, config.seed), "splitting the data")
        job.signals.finished.connect(self._show)
        job.signals.error.connect(self._failed)
        job.signals.done.connect(self._done)
        self.job = job.start()

    def _done(self) -> None:
        self.job = None
        if self._again:
            self._again = False
            self.compute()
        self.completeChanged.emit()

    def _failed(self, message: str) -> None:
        self.table.setRowCount(0)
        self.level_label.setText("")
        self.message.error(message)

    def _show(self, split: Any) -> None:
        if self._again:
            return  # settings changed while this split was computed
        self.split = split
        self.wiz.split = split
        s = split.summary()
        labels = list(split.labels)
        cols = ["Part", "Patients", "Images", *labels]
        self.table.setColumnCount(len(cols))
        self.table.setHorizontalHeaderLabels(cols)
        self.table.setRowCount(3)
        for i, name in enumerate(("train", "val", "test")):
            d = s["splits"][name]
            row = [SPLIT_NAMES[name], d["patients"], d["images"], *[d["per_class"].get(x, 0) for x in labels]]
            for j, v in enumerate(row):
                item = QTableWidgetItem(str(v))
                if j:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(i, j, item)
        if split.level == "patient":
            self.level_label.setText(f"Patient-level split; patient IDs from {split.source}. "
                                     "No patient is in two parts.")  # fmt: skip
        else:
            self.level_label.setText(
                "Image-level split: no patient IDs were found, so each image counts as its own patient. If "
                "a patient has several images, choose where the patient ID comes from."
            )
        if not s["splits"]["test"]["images"]:
            self.split = self.wiz.split = None
            self.message.error("The test part is empty, so the model could not be evaluated: raise the test "
                               "ratio or add images.")  # fmt: skip
        elif not s["splits"]["val"]["images"]:
            self.message.info("The validation part is empty: the best epoch is chosen on the training loss.")
        else:
            self.message.info("Press Next to choose the model and its settings.")
        self.completeChanged.emit()

    def isComplete(self) -> bool:  # noqa: N802 - Qt override
        return self.split is not None and self.job is None and not self.timer.isActive()
