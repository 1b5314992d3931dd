"""Wizard page 1: the data source (folder or CSV), its preset, filters, and a scanned preview."""

from __future__ import annotations

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
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
    QWizardPage,
)

from app.progress import ProgressPanel, count_text
from app.training.common import Gallery, MessageLabel, combo, spin
from app.training.data_presenter import (
    CHEXPERT_NAMES,
    PRESET_NAMES,
    SIIM_NAMES,
    DataPresenter,
    ScanSummary,
    SourceOptions,
)
from app.training.session import TrainingSession
from app.workers import Job
from ml.training.config import DataConfig


def _scan(config: DataConfig):  # noqa: ANN202
    from ml.training.presets import load_source

    return lambda progress, cancel: load_source(config, progress, cancel)


class DataPage(QWizardPage):
    """The view of :class:`DataPresenter`: renders its state and forwards the user's intent."""

    def __init__(self, session: TrainingSession) -> None:
        super().__init__()
        self.setTitle("1. Data")
        self.setSubTitle(
            "Choose a folder with one sub-folder per class (e.g. NORMAL/ and PNEUMONIA/), a known public "
            "dataset, or a CSV file of image paths and labels, then press Scan. Your images are only read, "
            "never changed."
        )
        self.job: Job | None = None
        self.presenter = DataPresenter(self, session)
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
        self.chexpert_policy = combo(CHEXPERT_NAMES, DataConfig().chexpert_uncertain)
        self.siim_task = combo(SIIM_NAMES, DataConfig().siim_task)
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
        self.progress = ProgressPanel(formatter=count_text, cancel_text="Cancel scan",
                                      cancel_tooltip="Stop scanning", object_name="scanProgress")  # fmt: skip
        scan_row = QHBoxLayout()
        scan_row.addWidget(self.scan_button)
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
        p = self.presenter
        self.path_edit.textChanged.connect(p.source_changed)
        self.preset_combo.currentIndexChanged.connect(p.source_changed)
        for w in (self.path_column, self.label_column, self.chexpert_policy, self.siim_task):
            w.currentIndexChanged.connect(p.settings_changed)
        for e in (self.label_columns, self.separator, self.image_root):
            e.textChanged.connect(p.settings_changed)
        for c in (self.frontal_only, self.single_image):
            c.toggled.connect(p.settings_changed)
        self.min_size.valueChanged.connect(p.settings_changed)
        self.scan_button.clicked.connect(p.scan)
        self.path_edit.returnPressed.connect(p.scan)

    @staticmethod
    def _column_combo() -> QComboBox:
        w = QComboBox()
        w.setEditable(True)
        w.addItem("")
        return w

    # ------------------------------------------------------------------ intent
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
            self.presenter.scan()

    def scan(self) -> None:
        self.presenter.scan()

    def cancel_scan(self) -> None:
        self.presenter.cancel()

    def scanning(self) -> bool:
        return self.presenter.scanning

    def isComplete(self) -> bool:  # noqa: N802 - Qt override
        return self.presenter.is_complete()

    # ------------------------------------------------------------------ DataView
    def read_settings(self, d: DataConfig) -> None:
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

    def show_source_options(self, o: SourceOptions) -> None:
        self.csv_box.setVisible(o.csv_columns)
        self.detected_label.setText(o.detected)
        self.options_box.setVisible(o.dataset_options)
        self.chexpert_policy.setEnabled(o.chexpert)
        self.siim_task.setEnabled(o.siim)
        if o.csv_header is None:
            return
        header = list(o.csv_header)
        for w in (self.path_column, self.label_column):
            current = w.currentText()
            w.blockSignals(True)
            w.clear()
            w.addItems(["", *header])
            w.setCurrentText(current if current in header else "")
            w.blockSignals(False)

    def show_message(self, text: str, error: bool = False) -> None:
        (self.message.error if error else self.message.info)(text)

    def show_scanning(self, scanning: bool) -> None:
        self.scan_button.setEnabled(not scanning)

    def show_summary(self, summary: ScanSummary | None) -> None:
        rows = summary.class_rows if summary else []
        self.class_table.setRowCount(len(rows))
        for i, (label, n) in enumerate(rows):
            self.class_table.setItem(i, 0, QTableWidgetItem(label))
            item = QTableWidgetItem(str(n))
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.class_table.setItem(i, 1, item)
        self.problems.clear()
        for line in summary.problems if summary else []:
            self.problems.addItem(line)
        shown = self.problems.count() > 0
        self.problems_label.setVisible(shown)
        self.problems.setVisible(shown)
        if summary is None:
            self.samples.clear()
        else:
            self.samples.set_items(summary.samples)

    def start_scan(self, config: DataConfig) -> None:
        p = self.presenter
        job = Job(_scan(config), "scanning the training data")
        job.signals.finished.connect(p.scan_finished)
        job.signals.error.connect(p.scan_failed)
        job.signals.cancelled.connect(p.scan_cancelled)
        job.signals.done.connect(p.scan_done)
        self.progress.bind(job, "Scanning")
        self.job = job.start()

    def stop_scan(self) -> None:
        if self.job is not None and not self.job.is_done:
            self.job.cancel()

    def complete_changed(self) -> None:
        self.completeChanged.emit()
