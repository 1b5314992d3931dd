"""The analysis panel's widgets and their wiring (see :class:`app.analysis.panel.AnalysisPanel`).

:func:`build_layout` creates the widgets as attributes of the panel (``panel.model_combo``,
``panel.run_image_button``, ...); :func:`connect_signals` connects them to the panel's methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.analysis.heatmap import HeatmapControls
from app.analysis.results import ResultsTable

if TYPE_CHECKING:
    from app.analysis.panel import AnalysisPanel

DEVICES = (("auto", "Automatic"), ("cpu", "CPU"), ("cuda", "CUDA GPU"), ("mps", "Apple GPU"))
EMPTY, LISTING, READY = 0, 1, 2


def build_layout(panel: AnalysisPanel) -> None:
    """Create the panel's pages (no model, listing, models) and widgets; show the listing page."""
    panel.stack = QStackedWidget()
    # no model installed
    empty = QWidget()
    lay = QVBoxLayout(empty)
    panel.empty_label = QLabel("No model is installed.\nDownload a pretrained model from the catalogue, "
                              "or import a model file.", objectName="noModelLabel")  # fmt: skip
    panel.empty_label.setWordWrap(True)
    panel.download_button = QPushButton("Download…", objectName="offerDownload")
    panel.import_button = QPushButton("Import…", objectName="offerImport")
    lay.addWidget(panel.empty_label)
    lay.addWidget(panel.download_button)
    lay.addWidget(panel.import_button)
    lay.addStretch(1)
    listing = QLabel("Looking for installed models…")
    listing.setAlignment(Qt.AlignmentFlag.AlignTop)
    # models
    main = QWidget()
    v = QVBoxLayout(main)
    v.setContentsMargins(4, 4, 4, 4)
    pick = QHBoxLayout()
    panel.model_combo = QComboBox(objectName="modelPicker")
    panel.model_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    panel.library_button = QToolButton(text="Library…", objectName="libraryButton")
    pick.addWidget(QLabel("Model"))
    pick.addWidget(panel.model_combo, 1)
    pick.addWidget(panel.library_button)
    v.addLayout(pick)
    panel.card = QTextBrowser(objectName="panelModelCard")
    panel.card.setMaximumHeight(150)
    panel.card_toggle = QCheckBox("Show model card")
    panel.card_toggle.setChecked(False)
    panel.card.setVisible(False)
    dev = QHBoxLayout()
    panel.device_combo = QComboBox(objectName="deviceChoice")
    for key, text in DEVICES:
        panel.device_combo.addItem(text, key)
    dev.addWidget(panel.card_toggle)
    dev.addStretch(1)
    dev.addWidget(QLabel("Device"))
    dev.addWidget(panel.device_combo)
    v.addLayout(dev)
    v.addWidget(panel.card)
    runs = QHBoxLayout()
    panel.run_image_button = QPushButton("Image", objectName="runImage")
    panel.run_series_button = QPushButton("Series", objectName="runSeries")
    panel.run_all_button = QPushButton("All studies", objectName="runAll")
    panel.run_image_button.setToolTip("Classify the image shown in the viewer")
    panel.run_series_button.setToolTip("Classify every image of the current series")
    panel.run_all_button.setToolTip("Classify every image of every open study")
    runs.addWidget(QLabel("Run on"))
    for b in (panel.run_image_button, panel.run_series_button, panel.run_all_button):
        runs.addWidget(b)
    v.addLayout(runs)
    prog = QHBoxLayout()
    panel.progress = QProgressBar(objectName="analysisProgress")
    panel.cancel_button = QToolButton(text="Cancel", objectName="analysisCancel")
    prog.addWidget(panel.progress, 1)
    prog.addWidget(panel.cancel_button)
    v.addLayout(prog)
    panel.status = QLabel("", objectName="analysisStatus")
    panel.status.setWordWrap(True)
    v.addWidget(panel.status)
    panel.batch_combo = QComboBox(objectName="batchResults")
    panel.batch_combo.setVisible(False)
    v.addWidget(panel.batch_combo)
    panel.table = ResultsTable()
    v.addWidget(panel.table, 1)
    box = QGroupBox("Heatmap")
    bl = QVBoxLayout(box)
    panel.controls = HeatmapControls()
    panel.auto_explain = QCheckBox("Grad-CAM after each image run", objectName="autoExplain")
    panel.auto_explain.setChecked(True)
    bl.addWidget(panel.controls)
    bl.addWidget(panel.auto_explain)
    v.addWidget(box)
    exp = QHBoxLayout()
    panel.pdf_button = QPushButton("Report PDF…", objectName="exportPdf")
    panel.png_button = QPushButton("Report PNG…", objectName="exportPng")
    panel.csv_button = QPushButton("CSV…", objectName="exportCsv")
    for b in (panel.pdf_button, panel.png_button, panel.csv_button):
        exp.addWidget(b)
    v.addLayout(exp)
    panel.disclaimer = QLabel("<b>Not for diagnostic use.</b> A reading aid, not a diagnosis.")
    panel.disclaimer.setStyleSheet("color: #b41e1e")
    v.addWidget(panel.disclaimer)
    for page in (empty, listing, main):
        panel.stack.addWidget(page)
    outer = QVBoxLayout(panel)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(panel.stack)
    panel.stack.setCurrentIndex(LISTING)


def connect_signals(panel: AnalysisPanel) -> None:
    """Connect the widgets to the panel; restore the saved device choice."""
    panel.download_button.clicked.connect(lambda: panel.open_library(catalogue=True))
    panel.import_button.clicked.connect(panel.import_model_dialog)
    panel.library_button.clicked.connect(lambda: panel.open_library())
    panel.model_combo.currentIndexChanged.connect(panel._model_chosen)
    panel.device_combo.currentIndexChanged.connect(panel._device_chosen)
    panel.card_toggle.toggled.connect(panel.card.setVisible)
    panel.run_image_button.clicked.connect(panel.run_current)
    panel.run_series_button.clicked.connect(panel.run_series)
    panel.run_all_button.clicked.connect(panel.run_all)
    panel.cancel_button.clicked.connect(panel.cancel)
    panel.controls.explainRequested.connect(lambda: panel.explain())
    panel.controls.styleChanged.connect(panel.layer.set_style)
    panel.batch_combo.currentIndexChanged.connect(panel._batch_row_chosen)
    panel.pdf_button.clicked.connect(lambda: panel._export_dialog("pdf"))
    panel.png_button.clicked.connect(lambda: panel._export_dialog("png"))
    panel.csv_button.clicked.connect(lambda: panel._export_dialog("csv"))
    panel.viewer.imageChanged.connect(panel._image_changed)
    saved = panel._settings_value("analysis/device", "auto")
    panel.device_combo.setCurrentIndex(max(0, panel.device_combo.findData(saved)))
