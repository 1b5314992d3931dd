"""Wizard page 1: the data source (folder or CSV), its preset, filters, and a scanned preview."""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
    QWizardPage,
)

from app.training.common import Gallery, MessageLabel, combo, spin
from app.workers import Job
from ml.training.config import DataConfig, TrainConfig

PRESET_NAMES = [
    ("Detect automatically", "auto"),
    ("Folder with one sub-folder per class", "folder"),
    ("CSV file of paths and labels", "csv"),
    ("COVID-19 Radiography Database", "covid19_radiography"),
    ("Paediatric pneumonia (chest_xray/train, val, test)", "pediatric_pneumonia"),
    ("NIH ChestX-ray14", "nih_chestxray14"),
    ("CheXpert", "chexpert"),
    ("SIIM-FISABIO-RSNA COVID-19", "siim_covid19"),
]
SAMPLES_PER_CLASS = 4


def _scan(config: DataConfig):  # noqa: ANN202
    from ml.training.presets import load_source

    return lambda progress, cancel: load_source(config, progress, cancel)


class DataPage(QWizardPage):
    def __init__(self, wizard: Any) -> None:
        super().__init__()
        self.wiz = wizard
        self.setTitle("1. Data")
        self.setSubTitle(
            "Choose a folder with one sub-folder per class (e.g. NORMAL/ and PNEUMONIA/), a known public "
            "dataset, or a CSV file of image paths and labels, then press Scan. Your images are only read, "
            "never changed."
        )
        self.data: Any = None
        self.job: Job | None = None
        self._build()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        self.path_edit = QLineEdit()
        self.path_edit.setObjectName("dataPath")
        self.path_edit.setPlaceholderText("a folder or a .csv file")
        self.folder_button = QPushButton("Folder…")
        self.csv_button = QPushButton("CSV file…")
        row = QHBoxLayout()
        row.addWidget(self.path_edit, 1)
        row.addWidget(self.folder_button)
        row.addWidget(self.csv_button)

        self.preset_combo = combo(
            PRESET_NAMES, "auto", "The layout of the data; detected from the files when automatic"
        )
        self.detected_label = QLabel("")
        self.detected_label.setStyleSheet("color: #555;")
        preset_row = QHBoxLayout()
        preset_row.addWidget(self.preset_combo, 1)
        preset_row.addWidget(self.detected_label, 1)

        self.csv_box = QGroupBox("CSV columns (empty: detected)")
        csv_form = QFormLayout(self.csv_box)
        self.path_column = self._column_combo()
        self.label_column = self._column_combo()
        self.label_columns = QLineEdit()
        self.label_columns.setPlaceholderText("one 0/1 column per label, comma-separated (optional)")
        self.separator = QLineEdit("|")
        self.separator.setMaximumWidth(60)
        self.image_root = QLineEdit()
        self.image_root.setPlaceholderText("folder the paths are relative to (default: the CSV's folder)")
        csv_form.addRow("Image path column", self.path_column)
        csv_form.addRow("Label column", self.label_column)
        csv_form.addRow("Label columns", self.label_columns)
        csv_form.addRow("Labels separator", self.separator)
        csv_form.addRow("Image folder", self.image_root)
        self.csv_box.setVisible(False)

        self.options_box = QGroupBox("Dataset options")
        opt_form = QFormLayout(self.options_box)
        self.chexpert_policy = combo([("ignore (left out of the loss)", "ignore"), ("treat as negative", "zeros"),
                                      ("treat as positive", "ones")], "ignore")  # fmt: skip
        self.siim_task = combo(
            [("negative vs. the rest (binary)", "binary"), ("four classes", "4class")], "binary"
        )
        opt_form.addRow("CheXpert uncertain labels", self.chexpert_policy)
        opt_form.addRow("SIIM task", self.siim_task)
        self.options_box.setVisible(False)

        filters = QGroupBox("Filters")
        f = QHBoxLayout(filters)
        self.frontal_only = QCheckBox("Frontal views only (reject laterals)")
        self.frontal_only.setChecked(True)
        self.single_image = QCheckBox("Only studies with a single image")
        self.min_size = spin(
            0, 4096, 0, " px", "no minimum", "Leave out images smaller than this (rows or columns)"
        )
        f.addWidget(self.frontal_only)
        f.addWidget(self.single_image)
        f.addWidget(QLabel("Minimum size"))
        f.addWidget(self.min_size)
        f.addStretch(1)

        self.scan_button = QPushButton("Scan")
        self.scan_button.setObjectName("scanButton")
        self.scan_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel scan")
        self.cancel_button.setVisible(False)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        scan_row = QHBoxLayout()
        scan_row.addWidget(self.scan_button)
        scan_row.addWidget(self.cancel_button)
        scan_row.addWidget(self.progress, 1)
        self.message = MessageLabel()
        self.message.setObjectName("dataMessage")

        self.class_table = QTableWidget(0, 2)
        self.class_table.setHorizontalHeaderLabels(["Class", "Images"])
        self.class_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.class_table.verticalHeader().setVisible(False)
        self.class_table.setMaximumWidth(320)
        self.samples = Gallery(88)
        self.problems = QListWidget()
        self.problems.setMaximumHeight(110)
        self.problems_label = QLabel("Skipped files")
        preview = QSplitter(Qt.Orientation.Horizontal)
        preview.addWidget(self.class_table)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(QLabel("Sample images per class"))
        rl.addWidget(self.samples, 1)
        rl.addWidget(self.problems_label)
        rl.addWidget(self.problems)
        preview.addWidget(right)
        preview.setStretchFactor(1, 1)

        form = QFormLayout()
        form.addRow("Data source", row)
        form.addRow("Dataset type", preset_row)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.csv_box)
        layout.addWidget(self.options_box)
        layout.addWidget(filters)
        layout.addLayout(scan_row)
        layout.addWidget(self.message)
        layout.addWidget(preview, 1)

        self.folder_button.clicked.connect(self._choose_folder)
        self.csv_button.clicked.connect(self._choose_csv)
        self.path_edit.textChanged.connect(self._source_changed)
        self.preset_combo.currentIndexChanged.connect(self._source_changed)
        for w in (self.path_column, self.label_column, self.chexpert_policy, self.siim_task):
            w.currentIndexChanged.connect(self._invalidate)
        for e in (self.label_columns, self.separator, self.image_root):
            e.textChanged.connect(self._invalidate)
        for c in (self.frontal_only, self.single_image):
            c.toggled.connect(self._invalidate)
        self.min_size.valueChanged.connect(self._invalidate)
        self.scan_button.clicked.connect(self.scan)
        self.cancel_button.clicked.connect(self.cancel_scan)
        self.path_edit.returnPressed.connect(self.scan)

    @staticmethod
    def _column_combo() -> QComboBox:
        w = QComboBox()
        w.setEditable(True)
        w.addItem("")
        return w

    # ------------------------------------------------------------------ source
    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Training images: a folder with one sub-folder per class"
        )
        if folder:
            self.set_source(folder)

    def _choose_csv(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Training images: a CSV of paths and labels", "",
                                              "CSV files (*.csv);;All files (*)")  # fmt: skip
        if path:
            self.set_source(path)

    def set_source(self, path: str, scan: bool = False) -> None:
        self.path_edit.setText(path)
        if scan:
            self.scan()

    def _source_changed(self) -> None:
        path = Path(self.path_edit.text().strip()).expanduser()
        is_csv = path.is_file()
        self.csv_box.setVisible(is_csv and self.preset_combo.currentData() in ("auto", "csv"))
        detected = ""
        if self.path_edit.text().strip() and path.exists():
            try:
                from ml.training.presets import detect_preset

                detected = detect_preset(path)
            except Exception:  # noqa: BLE001 - detection is a hint only; Scan reports real problems
                detected = ""
        names = dict((d, t) for t, d in PRESET_NAMES)
        self.detected_label.setText(f"detected: {names.get(detected, detected)}" if detected else "")
        preset = self.preset_combo.currentData()
        effective = detected if preset == "auto" else preset
        self.options_box.setVisible(effective in ("chexpert", "siim_covid19"))
        self.chexpert_policy.setEnabled(effective == "chexpert")
        self.siim_task.setEnabled(effective == "siim_covid19")
        if is_csv:
            self._fill_columns(path)
        self._invalidate()

    def _fill_columns(self, path: Path) -> None:
        try:
            with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
                header = next(csv.reader(fh), [])
        except OSError:
            header = []
        for w in (self.path_column, self.label_column):
            current = w.currentText()
            w.blockSignals(True)
            w.clear()
            w.addItems(["", *header])
            w.setCurrentText(current if current in header else "")
            w.blockSignals(False)

    def _invalidate(self, *_args: Any) -> None:
        if self.data is not None:
            self.data = None
            self.wiz.data = None
            self.wiz.data_changed()
            self.message.info("The settings changed: press Scan again.")
        self.completeChanged.emit()

    def apply(self, config: TrainConfig) -> None:
        d = config.data
        d.path = self.path_edit.text().strip()
        d.preset = str(self.preset_combo.currentData())
        d.path_column = self.path_column.currentText().strip()
        d.label_column = self.label_column.currentText().strip()
        d.label_columns = [x.strip() for x in self.label_columns.text().split(",") if x.strip()]
        d.label_separator = self.separator.text() or "|"
        d.image_root = self.image_root.text().strip()
        d.frontal_only = self.frontal_only.isChecked()
        d.single_image_studies = self.single_image.isChecked()
        d.min_size = self.min_size.value()
        d.chexpert_uncertain = str(self.chexpert_policy.currentData())
        d.siim_task = str(self.siim_task.currentData())

    # ------------------------------------------------------------------ scan
    def scan(self) -> None:
        if self.job is not None:
            return
        config = TrainConfig()
        self.apply(config)
        self.data = None
        self.wiz.data = None
        self.wiz.data_changed()
        self.class_table.setRowCount(0)
        self.samples.clear()
        self.problems.clear()
        if not config.data.path:
            self.message.error("Choose a folder or a CSV file first.")
            self.completeChanged.emit()
            return
        self.message.info("Scanning…")
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.cancel_button.setVisible(True)
        self.scan_button.setEnabled(False)
        job = Job(_scan(config.data), "scanning the training data")
        job.signals.progress.connect(self._progress)
        job.signals.finished.connect(self._scanned)
        job.signals.error.connect(self.message.error)
        job.signals.cancelled.connect(lambda: self.message.info("Scan cancelled."))
        job.signals.done.connect(self._scan_done)
        self.job = job.start()
        self.completeChanged.emit()

    def cancel_scan(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def scanning(self) -> bool:
        return self.job is not None

    def _progress(self, done: int, total: int, message: str) -> None:
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
        if message:
            self.progress.setFormat(f"{message} (%v/%m)")

    def _scan_done(self) -> None:
        self.job = None
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)
        self.scan_button.setEnabled(True)
        self.completeChanged.emit()

    def _scanned(self, data: Any) -> None:
        self.data = data
        self.wiz.data = data
        self.wiz.data_changed()
        rep = data.report
        counts = data.label_counts()
        self.class_table.setRowCount(len(data.labels) + 1)
        for i, label in enumerate([*data.labels, "Total images"]):
            n = counts.get(label, 0) if i < len(data.labels) else len(data.samples)
            self.class_table.setItem(i, 0, QTableWidgetItem(label))
            item = QTableWidgetItem(str(n))
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.class_table.setItem(i, 1, item)
        task = (
            "one label per image" if data.task == "multiclass" else "several labels per image (multi-label)"
        )
        kind = dict((d, t) for t, d in PRESET_NAMES).get(rep.kind, rep.kind)
        lines = [f"{len(data.samples)} images in {len(data.labels)} classes ({task}); {kind}."]
        if rep.n_duplicates:
            lines.append(f"{rep.n_duplicates} duplicate file(s) skipped (same content as another file).")
        else:
            lines.append("No duplicates found.")
        if rep.n_unreadable:
            lines.append(f"{rep.n_unreadable} unreadable file(s) skipped (listed below).")
        lines += [f"{n} image(s) left out: {reason}." for reason, n in rep.filtered.items()]
        lines += [f"Note: {n}." for n in rep.notes]
        self.message.info(" ".join(lines))
        self.problems.clear()
        for path, reason in rep.unreadable:
            self.problems.addItem(f"{Path(path).name}: {reason}")
        for dup, first in rep.duplicates[:50]:
            self.problems.addItem(f"{Path(dup).name}: duplicate of {Path(first).name}")
        self.problems_label.setVisible(self.problems.count() > 0)
        self.problems.setVisible(self.problems.count() > 0)
        rng = random.Random(0)
        entries = []
        for label in data.labels:
            paths = [s.path for s in data.samples if label in s.labels]
            for p in sorted(rng.sample(paths, min(SAMPLES_PER_CLASS, len(paths)))):
                entries.append((p, label, p))
        self.samples.set_items(entries)
        self.completeChanged.emit()

    def isComplete(self) -> bool:  # noqa: N802 - Qt override
        return self.data is not None and self.job is None and len(self.data.labels) >= 2
