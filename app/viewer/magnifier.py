"""A round loupe that follows the cursor and shows full-resolution pixels, magnified.

It paints the display pixels of the region under the cursor (from the frame pipeline, never the
downsampled view), with the same rotation/flip as the view, without smoothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

# (x0, y0, x1, y1) in image pixels -> 8-bit grey (HxW) or RGB (HxWx3) display pixels
PatchSource = Callable[[int, int, int, int], np.ndarray | None]


def to_qimage(pixels: np.ndarray) -> QtGui.QImage:
    pixels = np.ascontiguousarray(pixels)
    h, w = pixels.shape[:2]
    if pixels.ndim == 2:
        img = QtGui.QImage(pixels.data, w, h, pixels.strides[0], QtGui.QImage.Format.Format_Grayscale8)
    else:
        img = QtGui.QImage(pixels.data, w, h, pixels.strides[0], QtGui.QImage.Format.Format_RGB888)
    return img.copy()  # own the memory


class Magnifier(QtWidgets.QWidget):
    DIAMETER = 220
    FACTOR = 2.0  # loupe scale relative to the current zoom (at least 2 screen pixels per image pixel)

    def __init__(self, parent: QtWidgets.QWidget):
        super().__init__(parent)
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_NoSystemBackground)
        self.resize(self.DIAMETER, self.DIAMETER)
        self.hide()
        self._source: PatchSource | None = None
        self._transform = QtGui.QTransform()  # image pixels -> parent widget pixels
        self._cursor = QtCore.QPointF()
        self._shape: tuple[int, int] = (0, 0)

    def configure(self, source: PatchSource | None, shape: tuple[int, int]) -> None:
        self._source, self._shape = source, shape

    def magnification(self) -> float:
        """Loupe scale in screen pixels per image pixel."""
        zoom = math.sqrt(abs(self._transform.determinant())) or 1.0
        return max(zoom * self.FACTOR, 2.0)

    def follow(self, cursor: QtCore.QPointF, image_to_widget: QtGui.QTransform) -> None:
        """Centre the loupe on ``cursor`` (parent widget coordinates) and repaint."""
        self._cursor, self._transform = QtCore.QPointF(cursor), QtGui.QTransform(image_to_widget)
        r = self.DIAMETER / 2
        self.move(int(cursor.x() - r), int(cursor.y() - r))
        self.update()

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        if self._source is None:
            return
        inv, ok = self._transform.inverted()
        if not ok:
            return
        zoom = math.sqrt(abs(self._transform.determinant())) or 1.0
        mag = self.magnification()
        r = self.DIAMETER / 2
        centre = inv.map(self._cursor)
        reach = r / mag + 2  # image pixels visible from the centre to the edge (any rotation)
        rows, cols = self._shape
        x0, y0 = max(int(centre.x() - reach), 0), max(int(centre.y() - reach), 0)
        x1, y1 = min(int(centre.x() + reach) + 1, cols), min(int(centre.y() + reach) + 1, rows)
        p = QtGui.QPainter(self)
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        clip = QtGui.QPainterPath()
        clip.addEllipse(QtCore.QRectF(1, 1, self.DIAMETER - 2, self.DIAMETER - 2))
        p.fillPath(clip, QtGui.QColor(0, 0, 0))
        if x1 > x0 and y1 > y0:
            patch = self._source(x0, y0, x1, y1)
            if patch is not None:
                p.save()
                p.setClipPath(clip)
                p.setRenderHint(QtGui.QPainter.RenderHint.SmoothPixmapTransform, False)
                # widget coords = (parent coords - widget pos) magnified about the cursor
                t = QtGui.QTransform(self._transform)
                t *= QtGui.QTransform.fromTranslate(-self._cursor.x(), -self._cursor.y())
                t *= QtGui.QTransform.fromScale(mag / zoom, mag / zoom)
                t *= QtGui.QTransform.fromTranslate(r, r)
                p.setTransform(t)
                p.drawImage(QtCore.QRectF(x0, y0, x1 - x0, y1 - y0), to_qimage(patch))
                p.restore()
        p.setPen(QtGui.QPen(QtGui.QColor(255, 190, 0), 2))
        p.drawEllipse(QtCore.QRectF(1, 1, self.DIAMETER - 2, self.DIAMETER - 2))
        p.setPen(QtGui.QPen(QtGui.QColor(255, 190, 0, 160), 1))
        p.drawLine(QtCore.QPointF(r - 6, r), QtCore.QPointF(r + 6, r))
        p.drawLine(QtCore.QPointF(r, r - 6), QtCore.QPointF(r, r + 6))
        p.end()
