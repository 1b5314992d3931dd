"""Mouse tools of the image view: what left/middle/right drags, clicks and the wheel do.

Left button: the current tool (window/level, pan, zoom, distance, angle, rectangle, ellipse).
Middle drag: pan. Right drag: zoom (up = in). Wheel: zoom about the cursor.
Window/level drag: right = wider window (less contrast), down = higher centre (darker for
MONOCHROME2); sensitivity scales with the image's value range (bit depth).

The tools change the display model (:class:`app.viewer.state.DisplayState`: window, tool) and,
for zoom, pan and measurements, the scene they are given (:class:`ToolScene`); they never know
the image view itself.
"""

from __future__ import annotations

import math
from typing import Protocol

import pyqtgraph as pg
from PySide6 import QtCore

from app.viewer.measurements import MeasurementLayer
from app.viewer.state import MEASURE_TOOLS, TOOLS, DisplayState
from ml.imaging.image import Window

__all__ = ["MEASURE_TOOLS", "TOOLS", "InteractionViewBox", "ToolHandler", "ToolScene"]
WHEEL_STEP = 1.2  # zoom factor per wheel notch
DRAG_ZOOM_PER_PX = 0.01  # log zoom per pixel of right-drag
WL_PIXELS_FOR_FULL_RANGE = 512.0  # a 512-pixel drag sweeps the image's whole value range
CLICK_SLOP_PX = 6.0  # an angle-tool drag shorter than this (screen pixels) is a click

Btn = QtCore.Qt.MouseButton


class InteractionViewBox(pg.ViewBox):
    """A ViewBox whose mouse handling is delegated to :class:`ToolHandler` (no context menu)."""

    def __init__(self, handler: ToolHandler):
        super().__init__(lockAspect=True, invertY=True, enableMenu=False, defaultPadding=0.0)
        self._handler = handler
        self.disableAutoRange()

    def mouseDragEvent(self, ev, axis=None):
        self._handler.drag(ev)

    def mouseClickEvent(self, ev):
        self._handler.click(ev)

    def wheelEvent(self, ev, axis=None):
        self._handler.wheel(ev)


class ToolScene(Protocol):
    """What the tools need from the view besides the display model."""

    def view_box(self) -> pg.ViewBox: ...
    def image_group(self) -> pg.ItemGroup: ...
    def measurement_layer(self) -> MeasurementLayer: ...
    def mark_user_zoom(self) -> None: ...


class ToolHandler:
    def __init__(self, state: DisplayState, scene: ToolScene):
        self.state = state
        self.scene = scene
        self._wl_start: Window | None = None
        self._began_by_drag = False

    @property
    def tool(self) -> str:
        return self.state.tool

    # ------------------------------------------------------------------ helpers
    def _vb(self) -> pg.ViewBox:
        return self.scene.view_box()

    def _image_point(self, scene_pos) -> tuple[float, float]:
        p = self.scene.image_group().mapFromScene(scene_pos)
        return p.x(), p.y()

    def wl_sensitivity(self) -> float:
        """Modality units per screen pixel of window/level drag."""
        lo, hi = self.state.value_span
        return max(hi - lo, 1.0) / WL_PIXELS_FOR_FULL_RANGE

    # ------------------------------------------------------------------ events
    def drag(self, ev) -> None:
        if self.state.image is None:
            ev.ignore()
            return
        ev.accept()
        button = ev.button()
        if button == Btn.MiddleButton or (button == Btn.LeftButton and self.tool == "pan"):
            self._pan(ev)
        elif button == Btn.RightButton or (button == Btn.LeftButton and self.tool == "zoom"):
            self._zoom_drag(ev)
        elif button == Btn.LeftButton and self.tool == "wl":
            self._window_drag(ev)
        elif button == Btn.LeftButton and self.tool in MEASURE_TOOLS:
            self._measure_drag(ev)

    def click(self, ev) -> None:
        if self.state.image is None or ev.button() != Btn.LeftButton:
            ev.ignore()
            return
        ev.accept()
        layer = self.scene.measurement_layer()
        if self.tool == "angle":
            p = self._image_point(ev.scenePos())
            if layer.drawing() == "angle":
                layer.add_point(p)
            else:
                layer.begin("angle", p)
            return
        layer.select_none()

    def wheel(self, ev) -> None:
        if self.state.image is None:
            ev.ignore()
            return
        ev.accept()
        notches = ev.delta() / 120.0
        if notches == 0:
            return
        vb = self._vb()
        self.scene.mark_user_zoom()
        vb.scaleBy((WHEEL_STEP**-notches, WHEEL_STEP**-notches), vb.mapToView(ev.pos()))

    def cursor_moved(self, scene_pos) -> None:
        layer = self.scene.measurement_layer()
        if layer.drawing() == "angle":
            layer.drag_to(self._image_point(scene_pos))

    # ------------------------------------------------------------------ tools
    def _pan(self, ev) -> None:
        vb = self._vb()
        delta = vb.mapToView(ev.lastPos()) - vb.mapToView(ev.pos())
        vb.translateBy(t=delta)

    def _zoom_drag(self, ev) -> None:
        vb = self._vb()
        dy = ev.pos().y() - ev.lastPos().y()
        s = math.exp(dy * DRAG_ZOOM_PER_PX)
        self.scene.mark_user_zoom()
        vb.scaleBy((s, s), vb.mapToView(ev.buttonDownPos()))

    def _window_drag(self, ev) -> None:
        if ev.isStart() or self._wl_start is None:
            self._wl_start = self.state.window()
        start = self._wl_start
        d = ev.pos() - ev.buttonDownPos()
        k = self.wl_sensitivity()
        self.state.set_window(start.center + d.y() * k, start.width + d.x() * k)
        if ev.isFinish():
            self._wl_start = None

    def _measure_drag(self, ev) -> None:
        layer = self.scene.measurement_layer()
        p = self._image_point(ev.scenePos())
        if ev.isStart():
            self._began_by_drag = not (self.tool == "angle" and layer.drawing() == "angle")
            if self._began_by_drag:
                layer.begin(self.tool, self._image_point(ev.buttonDownScenePos()))
        layer.drag_to(p)
        if ev.isFinish():
            if self.tool != "angle":
                layer.finish()
            elif self._began_by_drag and _screen_distance(ev) < CLICK_SLOP_PX:
                # a shaky click (held, moved a pixel or two): it placed the first point only
                layer.drag_to(self._image_point(ev.buttonDownScenePos()))
            else:
                layer.add_point(p)  # a drag placed A and the vertex (or fixed the point being placed)


def _screen_distance(ev) -> float:
    d = ev.screenPos() - ev.buttonDownScreenPos()
    return math.hypot(d.x(), d.y())
