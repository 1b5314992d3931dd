"""The heatmap's evidence in the analysis panel: the gate, contours, faithfulness and the sanity check.

:class:`EvidenceBox` renders an :class:`app.analysis.evidence.EvidenceShown` (the presenter decides
what it says) and forwards the user's intent as signals. :class:`ContourLayer` draws the outlines
of the map's top regions, with their areas, in the viewer overlay the heatmap uses (image pixel
coordinates: it follows zoom, pan, rotation and flip).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from app.analysis.evidence import EvidenceShown, area_text

CONTOUR_COLOUR = QColor(0, 230, 255)
GATE_STYLE = "background: #fff1c2; color: #5a3d00; padding: 3px"
FAILED_STYLE = "color: #b41e1e; font-weight: bold"


class ContourLayer:
    """Outlines of the top regions over the image (one curve, regions separated by NaN)."""

    NAME = "Contours"

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        self.item = pg.PlotCurveItem(pen=pg.mkPen(CONTOUR_COLOUR, width=2, cosmetic=True), connect="finite")
        self.item.setObjectName("contourItem")
        self.item.setZValue(60)
        self.item.setVisible(False)
        self.labels: list[pg.TextItem] = []
        self.regions: tuple[Any, ...] = ()
        self._added = False

    def set_regions(self, regions: tuple[Any, ...]) -> None:
        if not self._added:
            self.viewer.add_overlay_layer(self.item, self.NAME)
            self._added = True
        self.regions = tuple(regions)
        for label in self.labels:
            label.setParentItem(None)
            if label.scene() is not None:
                label.scene().removeItem(label)
        self.labels = []
        if not self.regions:
            self.item.setData([], [])
            self.item.setVisible(False)
            return
        xs, ys = [], []
        for i, region in enumerate(self.regions):
            poly = np.asarray(region.polygon, float)
            xs += [*poly[:, 1], poly[0, 1], np.nan]  # (row, col) -> x = col, y = row; closed
            ys += [*poly[:, 0], poly[0, 0], np.nan]
            text = pg.TextItem(f"{i + 1}: {area_text(region)}", color=CONTOUR_COLOUR,
                               anchor=(0, 1), fill=pg.mkBrush(0, 0, 0, 150))  # fmt: skip
            text.setParentItem(self.item)
            text.setPos(float(poly[:, 1].min()), float(poly[:, 0].min()))
            self.labels.append(text)
        self.item.setData(np.asarray(xs), np.asarray(ys))
        self.item.setVisible(True)

    def is_shown(self) -> bool:
        return bool(self.regions) and self.item.isVisible()


class EvidenceBox(QWidget):
    """Gate note and "Show anyway", outlines, and the faithfulness and sanity results."""

    showAnywayToggled = Signal(bool)
    contoursToggled = Signal(bool)
    faithfulnessRequested = Signal()
    sanityRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.method = QLabel("", objectName="heatmapMethodText")
        self.method.setWordWrap(True)
        self.gate = QLabel("", objectName="heatmapGate")
        self.gate.setWordWrap(True)
        self.gate.setStyleSheet(GATE_STYLE)
        self.show_anyway = QCheckBox("Show anyway (not evidence of a finding)", objectName="heatmapShowAnyway")
        self.contours = QCheckBox("Outline the top regions", objectName="heatmapContours")
        self.contours.setToolTip("Draw the outline of the map's regions above half of its maximum, with their "
                                 "areas (mm² from the pixel spacing)")  # fmt: skip
        self.contour_text = QLabel("", objectName="heatmapContourText")
        self.contour_text.setWordWrap(True)
        self.faith_button = QPushButton("Faithfulness", objectName="heatmapFaithfulness")
        self.faith_button.setToolTip("Measure how much removing the top 10% of this map lowers the probability, "
                                     "compared with a random 10% of the same shape")  # fmt: skip
        self.sanity_button = QPushButton("Sanity check", objectName="heatmapSanity")
        self.sanity_button.setToolTip("Does this method's map change when the model's weights are randomised? "
                                      "(Adebayo et al.'s check, on this image)")  # fmt: skip
        self.faithfulness = QLabel("", objectName="heatmapFaithfulnessText")
        self.faithfulness.setWordWrap(True)
        self.sanity = QLabel("", objectName="heatmapSanityText")
        self.sanity.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(3)
        for w in (self.method, self.gate, self.show_anyway, self.contours, self.contour_text):
            lay.addWidget(w)
        row = QHBoxLayout()
        row.addWidget(self.faith_button)
        row.addWidget(self.sanity_button)
        row.addStretch(1)
        lay.addLayout(row)
        lay.addWidget(self.faithfulness)
        lay.addWidget(self.sanity)
        self.show_anyway.toggled.connect(self.showAnywayToggled)
        self.contours.toggled.connect(self.contoursToggled)
        self.faith_button.clicked.connect(self.faithfulnessRequested)
        self.sanity_button.clicked.connect(self.sanityRequested)
        self.set_enabled(False)
        self.render(EvidenceShown())

    def render(self, shown: EvidenceShown) -> None:
        self.method.setText(shown.method)
        self.method.setVisible(bool(shown.method))
        self.gate.setText(shown.gate_note)
        self.gate.setVisible(bool(shown.gate_note))
        self.show_anyway.blockSignals(True)
        self.show_anyway.setChecked(shown.show_anyway)
        self.show_anyway.blockSignals(False)
        self.show_anyway.setVisible(shown.gated)
        self.contour_text.setText(shown.contour_text)
        self.contour_text.setVisible(bool(shown.contour_text))
        self.faithfulness.setText(shown.faithfulness)
        self.faithfulness.setVisible(bool(shown.faithfulness))
        self.sanity.setText(shown.sanity)
        self.sanity.setStyleSheet(FAILED_STYLE if shown.sanity_failed else "")
        self.sanity.setVisible(bool(shown.sanity))

    def set_enabled(self, on: bool) -> None:
        self.faith_button.setEnabled(on)
        self.sanity_button.setEnabled(on)


__all__ = ["CONTOUR_COLOUR", "ContourLayer", "EvidenceBox"]
