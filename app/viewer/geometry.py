"""Zoom, pan range, rotation and flips of the image view (a mixin of ImageViewer).

The image group's transform is: translate the image centre to the origin, then the orientation
(rotations/flips on screen axes, from the display model). The ViewBox range sets zoom and pan.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6 import QtCore, QtGui

from app.viewer.events import Event
from app.viewer.state import DisplayState, Orientation
from ml.imaging.image import XRayImage


def to_qtransform(o: Orientation) -> QtGui.QTransform:
    return QtGui.QTransform(float(o[0]), float(o[1]), float(o[2]), float(o[3]), 0.0, 0.0)


class GeometryMixin:
    state: DisplayState
    _vb: pg.ViewBox
    _group: pg.ItemGroup
    _image: XRayImage | None
    _fit_mode: bool

    def zoom_factor(self) -> float:
        """Screen pixels per image pixel."""
        if self._vb.width() <= 0 or self._vb.height() <= 0:
            return 1.0
        r = self._vb.viewRect()
        return self._vb.width() / r.width() if r.width() > 0 else 1.0

    def mark_user_zoom(self) -> None:
        self._fit_mode = False

    def zoom_fit(self) -> None:
        self._fit_mode = True
        if self._image is None or self._vb.width() <= 0:
            return
        rows, cols = self._image.shape
        rect = self._group.mapRectToParent(QtCore.QRectF(0, 0, cols, rows))
        self._vb.setRange(rect=rect, padding=0.01)

    def zoom_1to1(self) -> None:
        self._set_zoom(1.0)
        # snap so that image pixel edges fall on screen pixel edges (exact 1:1 display)
        r = self._vb.viewRect()
        origin = self._group.mapToParent(QtCore.QPointF(0, 0))
        left = origin.x() + round(r.left() - origin.x())
        top = origin.y() + round(r.top() - origin.y())
        self._vb.setRange(rect=QtCore.QRectF(left, top, r.width(), r.height()), padding=0)

    def zoom_by(self, factor: float) -> None:
        self._set_zoom(self.zoom_factor() * float(factor))

    def _set_zoom(self, zoom: float, center: QtCore.QPointF | None = None) -> None:
        self._fit_mode = False
        if self._vb.width() <= 0:
            return
        c = center if center is not None else self._vb.viewRect().center()
        w, h = self._vb.width() / zoom, self._vb.height() / zoom
        self._vb.setRange(rect=QtCore.QRectF(c.x() - w / 2, c.y() - h / 2, w, h), padding=0)

    def fit_zoom(self) -> float:
        """The zoom (screen pixels per image pixel) at which the whole image fits."""
        if self._image is None or self._vb.width() <= 0 or self._vb.height() <= 0:
            return 1.0
        rows, cols = self._image.shape
        rect = self._group.mapRectToParent(QtCore.QRectF(0, 0, cols, rows))
        return min(self._vb.width() / (rect.width() * 1.02), self._vb.height() / (rect.height() * 1.02))

    def camera(self) -> tuple[float, float, float]:
        """(zoom relative to fit, view centre x and y as fractions of the image's width and height)."""
        if self._image is None:
            return 1.0, 0.5, 0.5
        rows, cols = self._image.shape
        c = self._group.mapFromParent(self._vb.viewRect().center())
        return self.zoom_factor() / self.fit_zoom(), c.x() / cols, c.y() / rows

    def set_camera(self, zoom: float, cx: float, cy: float) -> None:
        """Show the image at ``zoom`` times the fit zoom, centred on the fraction (cx, cy) of it."""
        if self._image is None:
            return
        if abs(zoom - 1.0) < 1e-3 and abs(cx - 0.5) < 1e-3 and abs(cy - 0.5) < 1e-3:
            self.zoom_fit()
            return
        rows, cols = self._image.shape
        self._set_zoom(zoom * self.fit_zoom(), self._group.mapToParent(QtCore.QPointF(cx * cols, cy * rows)))

    def rotate90(self, clockwise: bool = True) -> None:
        self.state.rotate90(clockwise)

    def flip_horizontal(self) -> None:
        self.state.flip_horizontal()

    def flip_vertical(self) -> None:
        self.state.flip_vertical()

    def orientation(self) -> QtGui.QTransform:
        """The rotation/flip applied to the image (2x2, on screen axes)."""
        return to_qtransform(self.state.orientation)

    def _on_orientation(self, _event: Event) -> None:
        """The model's orientation changed: keep the image point under the view centre there."""
        if self._image is None:
            return
        zoom, view_centre = self.zoom_factor(), self._vb.viewRect().center()
        anchor = self._group.mapFromParent(view_centre)  # image point under the view centre
        self._apply_group_transform()
        if self._fit_mode:
            self.zoom_fit()
        else:
            self._set_zoom(zoom, self._group.mapToParent(anchor))
        self._update_corner()  # type: ignore[attr-defined]  (OverlayMixin: the orientation markers)

    def _apply_group_transform(self) -> None:
        rows, cols = self._image.shape if self._image is not None else (0, 0)
        centre = QtGui.QTransform.fromTranslate(-cols / 2.0, -rows / 2.0)
        self._group.setTransform(centre * to_qtransform(self.state.orientation))
