"""A colour-scale legend over the image view (generic: the analysis layer sets it for heatmaps).

``viewer.set_legend(Legend(ramp, low="weak", high="strong", title="Grad-CAM"))`` shows a vertical
bar at the right edge, strongest at the top; ``viewer.set_legend(None)`` hides it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets


@dataclass(frozen=True, eq=False)
class Legend:
    ramp: np.ndarray  # N x 3 uint8 colours, the lowest value first
    low: str = "low"
    high: str = "high"
    title: str = ""


class LegendOverlay(QtWidgets.QWidget):
    """Transparent widget over the viewport that paints the legend (no mouse input)."""

    BAR_W, BAR_H, INSET = 14, 150, 34  # INSET: clear of the orientation marker on the right edge

    def __init__(self, parent: QtWidgets.QWidget):
        super().__init__(parent)
        self.setObjectName("viewerLegend")
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_NoSystemBackground)
        self._legend: Legend | None = None
        self._bar: QtGui.QImage | None = None
        self.hide()

    def legend(self) -> Legend | None:
        return self._legend

    def set_legend(self, legend: Legend | None) -> None:
        self._legend = legend
        self._bar = None
        if legend is not None:
            ramp = np.ascontiguousarray(np.asarray(legend.ramp, np.uint8)[::-1, :3])  # strongest on top
            bar = np.ascontiguousarray(np.repeat(ramp[:, None, :], self.BAR_W, axis=1))
            self._bar = QtGui.QImage(bar.data, self.BAR_W, bar.shape[0], 3 * self.BAR_W,
                                     QtGui.QImage.Format.Format_RGB888).copy()
        self.place()
        self.setVisible(legend is not None)
        self.update()

    def place(self) -> None:
        """Right edge of the parent, vertically centred."""
        parent = self.parentWidget()
        if parent is None:
            return
        fm = QtGui.QFontMetrics(self.font())
        texts = [t for t in (self._legend.low, self._legend.high, self._legend.title)] if self._legend else []
        width = max([fm.horizontalAdvance(t) for t in texts] + [self.BAR_W]) + 8
        height = self.BAR_H + 3 * fm.lineSpacing() + 8
        x = parent.width() - self.INSET - width
        y = (parent.height() - height) // 2
        self.setGeometry(max(x, 0), max(y, 0), width, height)

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 - Qt override
        if self._legend is None or self._bar is None:
            return
        p = QtGui.QPainter(self)
        fm = QtGui.QFontMetrics(self.font())
        step, w = fm.lineSpacing(), self.width()
        y = 2
        for text in (self._legend.title, self._legend.high):
            if text:
                self._outlined(p, QtCore.QPointF((w - fm.horizontalAdvance(text)) / 2, y + fm.ascent()), text)
            y += step
        bar = QtCore.QRectF((w - self.BAR_W) / 2, y, self.BAR_W, self.BAR_H)
        p.drawImage(bar, self._bar)
        p.setPen(QtGui.QPen(QtGui.QColor(240, 240, 240), 1))
        p.drawRect(bar.adjusted(-0.5, -0.5, 0.5, 0.5))
        low = self._legend.low
        self._outlined(p, QtCore.QPointF((w - fm.horizontalAdvance(low)) / 2, bar.bottom() + 2 + fm.ascent()), low)
        p.end()

    @staticmethod
    def _outlined(p: QtGui.QPainter, at: QtCore.QPointF, text: str) -> None:
        p.setPen(QtGui.QColor(0, 0, 0, 230))
        for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            p.drawText(at + QtCore.QPointF(dx, dy), text)
        p.setPen(QtGui.QColor(240, 240, 240))
        p.drawText(at, text)
