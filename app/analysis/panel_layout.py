"""The analysis panel's widgets (see :class:`app.analysis.panel.AnalysisPanel`).

:class:`PanelWidgets` creates them in a parent widget, the way a Qt Designer ``Ui_*`` class does;
it knows nothing of the panel, its presenter or the main window.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.analysis.evidence_view import EvidenceBox
from app.analysis.heatmap import HeatmapControls
from app.analysis.results import ResultsTable
from app.analysis.state import LISTING
from app.progress import ProgressPanel

DEVICES = (("auto", "Automatic"), ("cpu", "CPU"), ("cuda", "CUDA GPU"), ("mps", "Apple GPU"))


class PanelWidgets:
    """The panel's pages (no model, listing, models) and widgets, laid out in ``panel``."""

    def __init__(self, panel: QWidget) -> None:
        self.stack = QStackedWidget()
        # no model installed
        empty = QWidget()
        lay = QVBoxLayout(empty)
        self.empty_label = QLabel("No model is installed.\nDownload a pretrained model from the catalogue, "
                                  "or import a model file.", objectName="noModelLabel")  # fmt: skip
        self.empty_label.setWordWrap(True)
        self.download_button = QPushButton("Download…", objectName="offerDownload")
        self.import_button = QPushButton("Import…", objectName="offerImport")
        lay.addWidget(self.empty_label)
        lay.addWidget(self.download_button)
        lay.addWidget(self.import_button)
        lay.addStretch(1)
        listing = QLabel("Looking for installed models…")
        listing.setAlignment(Qt.AlignmentFlag.AlignTop)
        # models
        main = QWidget()
        v = QVBoxLayout(main)
        v.setContentsMargins(4, 4, 4, 4)
        pick = QHBoxLayout()
        self.model_combo = QComboBox(objectName="modelPicker")
        self.model_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.library_button = QToolButton(text="Library…", objectName="libraryButton")
        pick.addWidget(QLabel("Model"))
        pick.addWidget(self.model_combo, 1)
        pick.addWidget(self.library_button)
        v.addLayout(pick)
        self.card = QTextBrowser(objectName="panelModelCard")
        self.card.setMaximumHeight(150)
        self.card_toggle = QCheckBox("Show model card")
        self.card_toggle.setChecked(False)
        self.card.setVisible(False)
        dev = QHBoxLayout()
        self.device_combo = QComboBox(objectName="deviceChoice")
        for key, text in DEVICES:
            self.device_combo.addItem(text, key)
        dev.addWidget(self.card_toggle)
        dev.addStretch(1)
        dev.addWidget(QLabel("Device"))
        dev.addWidget(self.device_combo)
        v.addLayout(dev)
        v.addWidget(self.card)
        runs = QHBoxLayout()
        self.run_image_button = QPushButton("Image", objectName="runImage")
        self.run_series_button = QPushButton("Series", objectName="runSeries")
        self.run_all_button = QPushButton("All studies", objectName="runAll")
        self.run_image_button.setToolTip("Classify the image shown in the viewer")
        self.run_series_button.setToolTip("Classify every image of the current series")
        self.run_all_button.setToolTip("Classify every image of every open study")
        runs.addWidget(QLabel("Run on"))
        for b in (self.run_image_button, self.run_series_button, self.run_all_button):
            runs.addWidget(b)
        v.addLayout(runs)
        self.progress = ProgressPanel(cancel_tooltip="Stop the analysis", object_name="analysisProgress")
        self.cancel_button = self.progress.cancel_button
        v.addWidget(self.progress)
        self.status = QLabel("", objectName="analysisStatus")
        self.status.setWordWrap(True)
        v.addWidget(self.status)
        self.batch_combo = QComboBox(objectName="batchResults")
        self.batch_combo.setVisible(False)
        v.addWidget(self.batch_combo)
        self.scope_banner = QLabel("", objectName="scopeBanner")  # the out-of-scope guard's banner
        self.scope_banner.setWordWrap(True)
        self.scope_banner.setStyleSheet("background: #fff1c2; color: #5a3d00; padding: 4px; font-weight: bold")
        self.scope_banner.setVisible(False)
        self.scope_toggle = QCheckBox("Show anyway (research use)", objectName="scopeShowAnyway")
        self.scope_toggle.setVisible(False)
        v.addWidget(self.scope_banner)
        v.addWidget(self.scope_toggle)
        self.table = ResultsTable()
        v.addWidget(self.table, 1)
        box = QGroupBox("Heatmap")
        bl = QVBoxLayout(box)
        self.controls = HeatmapControls()
        self.auto_explain = QCheckBox("Grad-CAM after each image run", objectName="autoExplain")
        self.auto_explain.setChecked(True)
        self.evidence = EvidenceBox()  # gate, outlines, faithfulness, sanity (app.analysis.evidence)
        bl.addWidget(self.controls)
        bl.addWidget(self.evidence)
        bl.addWidget(self.auto_explain)
        v.addWidget(box)
        exp = QHBoxLayout()
        self.pdf_button = QPushButton("Report PDF…", objectName="exportPdf")
        self.png_button = QPushButton("Report PNG…", objectName="exportPng")
        self.csv_button = QPushButton("CSV…", objectName="exportCsv")
        for b in (self.pdf_button, self.png_button, self.csv_button):
            exp.addWidget(b)
        v.addLayout(exp)
        # a row of its own: five buttons in one row made the panel wider than its 440 px dock
        self.export_row = QHBoxLayout()  # app.analysis.dicom_export_view adds "DICOM…" and "Send to PACS…"
        v.addLayout(self.export_row)
        self.disclaimer = QLabel("<b>Not for diagnostic use.</b> A reading aid, not a diagnosis.")
        self.disclaimer.setStyleSheet("color: #b41e1e")
        v.addWidget(self.disclaimer)
        for page in (empty, listing, main):
            self.stack.addWidget(page)
        outer = QVBoxLayout(panel)
        outer.setContentsMargins(0, 0, 0, 0)
        # the panel scrolls instead of forcing its height on the window (a 768 px laptop screen)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self.stack)
        outer.addWidget(scroll)
        self.stack.setCurrentIndex(LISTING)
