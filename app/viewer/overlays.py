"""Overlay layers, corner text, cursor value and magnifier of the image view (a mixin of ImageViewer)."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore

from app.viewer.corner_text import CornerTextOverlay, ViewState, corner_lines
from app.viewer.legend import Legend, LegendOverlay
from app.viewer.magnifier import Magnifier
from app.viewer.pipeline import FramePipeline
from app.viewer.state import DisplayState

Z_OVERLAYS = 10


class OverlayMixin:
    state: DisplayState
    cursorInfo: QtCore.SignalInstance
    _canvas: pg.GraphicsView
    _group: pg.ItemGroup
    _handler: object
    _pipeline: FramePipeline | None
    _lut: np.ndarray | None
    _overlays: dict[str, pg.GraphicsObject]
    _corner: CornerTextOverlay
    _magnifier: Magnifier
    _magnifier_on: bool
    _legend: LegendOverlay
    _caption: str

    # ------------------------------------------------------------------ overlay layers
    def add_overlay_layer(self, item: pg.GraphicsObject, name: str) -> None:
        """Show ``item`` (in image pixel coordinates) above the image; replaces a layer of that name."""
        self.remove_overlay_layer(name)
        item.setParentItem(self._group)
        item.setZValue(Z_OVERLAYS + len(self._overlays))
        self._overlays[name] = item

    def remove_overlay_layer(self, name: str) -> None:
        old = self._overlays.pop(name, None)
        if old is not None:
            if old.scene() is not None:
                old.scene().removeItem(old)
            old.setParentItem(None)

    def overlay_layer(self, name: str) -> pg.GraphicsObject | None:
        return self._overlays.get(name)

    # ------------------------------------------------------------------ colour-scale legend
    def set_legend(self, legend: Legend | None) -> None:
        """Show a colour scale at the right edge (e.g. the heatmap's); None hides it."""
        self._legend.set_legend(legend)

    def legend(self) -> Legend | None:
        return self._legend.legend()

    # ------------------------------------------------------------------ corner text
    def set_caption(self, text: str) -> None:
        """A first line for the top-right corner (a viewport's role and date, e.g. "Prior 2023-01-10")."""
        self._caption = text
        self._update_corner()

    def corner_text(self) -> dict[str, list[str]]:
        return self._corner.lines()

    def _update_corner(self) -> None:
        img = self.state.image
        if img is None:
            self._corner.set_lines({})
            return
        view = ViewState(
            frame=self.state.frame,
            n_frames=img.n_frames,
            window=None if img.is_color else self.state.window(),
            window_label=self.state.voi_label,
            zoom=self.zoom_factor(),  # type: ignore[attr-defined]  (GeometryMixin)
            inverted_by_user=self.state.inverted,
        )
        lines = corner_lines(img.meta, view)
        caption = self._caption
        if caption:  # e.g. "Prior 2023-01-10" from a hanging protocol, above the study date
            lines["tr"] = [caption, *lines["tr"]]
        labels = self.state.orientation_labels()
        if labels is not None:  # orientation markers at the middle of each edge
            lines.update({edge: [text] for edge, text in labels.as_dict().items()})
        self._corner.set_lines(lines)

    # ------------------------------------------------------------------ magnifier and cursor value
    def set_magnifier(self, on: bool) -> None:
        self._magnifier_on = bool(on)
        if not on:
            self._magnifier.hide()
        self._sync_check("viewer_magnifier", self._magnifier_on)  # type: ignore[attr-defined]

    def _patch(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray | None:
        return self._pipeline.rendered(x0, y0, x1, y1, self._lut) if self._pipeline is not None else None

    def _on_mouse_moved(self, scene_pos: QtCore.QPointF) -> None:
        img = self.state.image
        if img is None:
            return
        self._handler.cursor_moved(scene_pos)  # type: ignore[attr-defined]
        p = self._group.mapFromScene(scene_pos)
        col, row = math.floor(p.x()), math.floor(p.y())
        rows, cols = img.shape
        inside = 0 <= row < rows and 0 <= col < cols
        self.cursorInfo.emit(self._value_text(col, row) if inside else "")
        if self._magnifier_on:
            vp = self._canvas.viewport()
            cursor = self._canvas.viewportTransform().map(scene_pos)
            if inside and vp.rect().contains(cursor.toPoint()):
                t = self._group.sceneTransform() * self._canvas.viewportTransform()
                self._magnifier.follow(cursor, t)
                self._magnifier.show()
            else:
                self._magnifier.hide()

    def _value_text(self, col: int, row: int) -> str:
        image = self.state.image
        assert self._pipeline is not None and image is not None
        if image.is_color:
            r, g, b = (int(v) for v in image.frames[self.state.frame][row, col][:3])
            return f"{col}, {row}: R {r} G {g} B {b}"
        v = float(self._pipeline.modality_region(row, row + 1, col, col + 1)[0, 0])
        text = f"{v:.0f}" if math.isfinite(v) and v == int(v) else f"{v:.4g}"
        return f"{col}, {row}: {text}"

    def leaveEvent(self, ev: QtCore.QEvent) -> None:  # noqa: N802 - Qt override
        self._magnifier.hide()
        self.cursorInfo.emit("")
        super().leaveEvent(ev)  # type: ignore[misc]
