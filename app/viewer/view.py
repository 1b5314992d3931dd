"""ImageViewer: pyqtgraph wrapped once. Image, window/level, zoom/pan/rotate/flip, overlays, tools.

Scene layout: ViewBox -> image group (transform = centre, then rotation/flip) -> ImageItem (scaled
when a downsampled copy is shown), overlay layers (heatmaps) and measurement ROIs, all in image
pixel coordinates. Corner text and the magnifier are widgets over the viewport.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app.viewer.actions import build_actions
from app.viewer.corner_text import CornerTextOverlay, ViewState, corner_lines
from app.viewer.export import ExportMixin
from app.viewer.geometry import GeometryMixin
from app.viewer.magnifier import Magnifier
from app.viewer.measure import Measurement
from app.viewer.measurements import MeasureContext, MeasurementLayer
from app.viewer.pipeline import FramePipeline
from app.viewer.tools import TOOLS, InteractionViewBox, ToolHandler
from ml.imaging import display
from ml.imaging.image import VoiLut, Window, XRayImage

Z_OVERLAYS = 10
MAX_DOWNSAMPLE = 64


class _Canvas(pg.GraphicsView):
    resized = QtCore.Signal()

    def resizeEvent(self, ev):
        super().resizeEvent(ev)
        self.resized.emit()


class ImageViewer(GeometryMixin, ExportMixin, QtWidgets.QWidget):
    """The image view. See the package docstring and the method docstrings for the API."""

    imageChanged = QtCore.Signal()
    windowChanged = QtCore.Signal(float, float)
    cursorInfo = QtCore.Signal(str)
    measurementsChanged = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self._image: XRayImage | None = None
        self._pipeline: FramePipeline | None = None
        self._frame = 0
        self._voi: display.Voi | None = None
        self._voi_label = ""
        self._user_invert = False
        self._orient = QtGui.QTransform()
        self._fit_mode = True
        self._factor: int | None = None
        self._lut: np.ndarray | None = None
        self._auto_cache: dict[int, Window] = {}
        self._span: tuple[float, float] = (0.0, 255.0)
        self._overlays: dict[str, pg.GraphicsObject] = {}

        self._handler = ToolHandler(self)
        self._canvas = _Canvas(self, background="k")
        self._canvas.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        self._canvas.setMouseTracking(True)
        self.setFocusProxy(self._canvas)
        self._vb = InteractionViewBox(self._handler)
        self._canvas.setCentralItem(self._vb)
        self._group = pg.ItemGroup()
        self._vb.addItem(self._group)
        self._img = pg.ImageItem(axisOrder="row-major")
        self._img.setParentItem(self._group)
        self._layer = MeasurementLayer(self._group, self._measure_context)
        self._layer.changed.connect(self.measurementsChanged)
        self._corner = CornerTextOverlay(self._canvas.viewport())
        self._magnifier = Magnifier(self._canvas.viewport())
        self._magnifier_on = False
        self._cine = QtCore.QTimer(self)
        self._cine.timeout.connect(lambda: self.step_frame(1, wrap=True))

        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self._canvas)
        self._canvas.resized.connect(self._on_resized)
        self._vb.sigRangeChanged.connect(self._on_view_changed)
        self._canvas.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self._actions = build_actions(self)
        self.addActions(self._actions)

    # ================================================================== image
    def set_image(self, image: XRayImage, key: str | None = None) -> None:
        """Show ``image`` (already decoded) at fit zoom with its default window.

        ``key`` (e.g. the SOP Instance UID or the path) keeps the measurements of this image while
        the study is open; without it the SOP Instance UID, else the path, is used.
        """
        self.set_cine(False)
        self._image = image
        self._frame = 0
        self._auto_cache = {}
        self._user_invert = False
        self._orient = QtGui.QTransform()
        self._span = self._value_span(image)
        self._load_frame()
        self._voi, self._voi_label = self._default_voi()
        self._refresh_lut()
        self._layer.switch(key or image.meta.sop_instance_uid or image.meta.path or None)
        self._magnifier.configure(self._patch, image.shape)
        self._apply_group_transform()
        self.zoom_fit()
        self._update_resolution(force=True)
        self._update_corner()
        self.imageChanged.emit()
        self._emit_window()

    def clear(self) -> None:
        """Show nothing (measurements stay remembered for their image keys)."""
        self.set_cine(False)
        self._layer.switch(None)
        self._image = self._pipeline = None
        self._voi, self._lut, self._factor = None, None, None
        self._img.clear()
        self._corner.set_lines({})
        self._magnifier.configure(None, (0, 0))
        self._magnifier.hide()
        self.imageChanged.emit()

    def image(self) -> XRayImage | None:
        return self._image

    def n_frames(self) -> int:
        return self._image.n_frames if self._image is not None else 0

    def frame(self) -> int:
        return self._frame

    def set_frame(self, index: int) -> None:
        if self._image is None:
            return
        index = max(0, min(int(index), self._image.n_frames - 1))
        if index == self._frame:
            return
        self._frame = index
        self._load_frame()
        self._refresh_lut()
        self._update_resolution(force=True)
        self._layer.refresh()
        self._update_corner()
        self.imageChanged.emit()

    def step_frame(self, step: int, wrap: bool = False) -> None:
        if self._image is None:
            return
        n = self._image.n_frames
        target = self._frame + step
        self.set_frame(target % n if wrap else target)

    def set_cine(self, playing: bool, fps: float = 10) -> None:
        playing = bool(playing and self._image is not None and self._image.n_frames > 1)
        if playing:
            self._cine.start(max(int(1000.0 / max(fps, 0.1)), 1))
        else:
            self._cine.stop()
        self._sync_check("viewer_cine", playing)

    def is_playing(self) -> bool:
        return self._cine.isActive()

    def _load_frame(self) -> None:
        assert self._image is not None
        self._pipeline = FramePipeline(self._image, self._frame)
        self._factor = None

    # ================================================================== window / level
    def window(self) -> Window:
        """The current VOI as a window (a VOI LUT is described by its input range)."""
        voi = self._voi
        if isinstance(voi, Window):
            return voi
        if isinstance(voi, VoiLut):
            n = voi.data.size
            return Window(voi.first_mapped + n / 2.0, float(n), "LINEAR", voi.explanation or "VOI LUT")
        return Window(127.5, 256.0)

    def voi(self) -> display.Voi | None:
        """The VOI in use: a Window or a VoiLut from the file."""
        return self._voi

    def set_window(self, center: float, width: float) -> None:
        if self._image is None or self._image.is_color:
            return
        old = self._voi
        function = (
            old.function
            if isinstance(old, Window) and old.function in ("LINEAR_EXACT", "SIGMOID")
            else "LINEAR"
        )
        min_width = 1.0 if function == "LINEAR" else 1e-6 * max(self._span[1] - self._span[0], 1e-6)
        self._set_voi(Window(float(center), max(float(width), min_width), function, "manual"), "")

    def apply_preset(self, index_or_name: int | str) -> bool:
        """A file preset by 0-based index (keys 1-9), or by name: Lung, Mediastinum, Bone, auto,
        default, or a file window's explanation. Returns False when there is no such preset."""
        img = self._image
        if img is None or img.is_color:
            return False
        file_presets = display.presets(img)
        if isinstance(index_or_name, int):
            if not 0 <= index_or_name < len(file_presets):
                return False
            voi = file_presets[index_or_name]
            self._set_voi(voi, voi.explanation or f"file preset {index_or_name + 1}")
            return True
        name = str(index_or_name).strip().lower()
        for preset in display.CHEST_PRESETS:
            if name in (preset.name.lower(), preset.key.lower()):
                self._set_voi(display.chest_preset_window(img, preset, self._frame), preset.name)
                return True
        if name in ("auto", "automatic"):
            self.auto_window()
            return True
        if name == "default":
            self._set_voi(*self._default_voi())
            return True
        for i, voi in enumerate(file_presets):
            if voi.explanation and voi.explanation.strip().lower() == name:
                return self.apply_preset(i)
        return False

    def auto_window(self) -> None:
        if self._image is None or self._image.is_color:
            return
        self._set_voi(self._auto_window(), "automatic")

    def toggle_invert(self) -> None:
        if self._image is None:
            return
        self._user_invert = not self._user_invert
        self._refresh_lut()
        if self._pipeline is not None and self._pipeline.mode == "rgb":
            self._update_resolution(force=True)
        self._update_corner()

    def is_inverted(self) -> bool:
        """True when the view shows the inverse of the standard display (user toggle)."""
        return self._user_invert

    def value_span(self) -> tuple[float, float]:
        """The range window/level drags are scaled to (modality units)."""
        return self._span

    def _value_span(self, image: XRayImage) -> tuple[float, float]:
        lo, hi = display.value_range(image)
        frame = image.frames[0]
        if not image.is_color and frame.size and frame.dtype.kind in "iu" and image.modality_lut is None:
            # 16-bit containers holding 12-bit data: scale drags to the data, not the container
            dlo, dhi = float(frame.min()), float(frame.max())
            s, b = image.rescale_slope, image.rescale_intercept
            dlo, dhi = sorted((dlo * s + b, dhi * s + b))
            if (dhi - dlo) * 4 < (hi - lo):
                return dlo, max(dhi, dlo + 1.0)
        return lo, hi

    def _auto_window(self) -> Window:
        if self._frame not in self._auto_cache:
            self._auto_cache[self._frame] = display.auto_window(
                display.modality_values(self._image, self._frame)
            )
        return self._auto_cache[self._frame]

    def _default_voi(self) -> tuple[display.Voi | None, str]:
        img = self._image
        if img is None or img.is_color:
            return None, ""
        if img.windows:
            return img.windows[0], img.windows[0].explanation or "file"
        if img.voi_luts:
            return img.voi_luts[0], img.voi_luts[0].explanation or "VOI LUT"
        return self._auto_window(), "automatic"

    def _set_voi(self, voi: display.Voi, label: str) -> None:
        self._voi, self._voi_label = voi, label
        self._refresh_lut()
        self._update_corner()
        self._emit_window()

    def _emit_window(self) -> None:
        if self._image is not None and not self._image.is_color:
            w = self.window()
            self.windowChanged.emit(float(w.center), float(w.width))

    def _effective_invert(self) -> bool:
        return self._image is not None and (self._image.meta.inverted != self._user_invert)

    def _refresh_lut(self) -> None:
        if self._pipeline is None:
            return
        if self._pipeline.mode == "rgb":
            self._lut = None
            if self._pipeline.set_rgb_inverted(self._user_invert):
                self._factor = None
            return
        self._lut = self._pipeline.lut(self._voi, self._effective_invert())
        if self._factor is not None:
            self._img.setLookupTable(self._lut)

    def _update_resolution(self, force: bool = False) -> None:
        """Give the ImageItem the pyramid level that matches the screen (about one pixel per pixel)."""
        pipe = self._pipeline
        if pipe is None:
            return
        # one stored block per screen pixel (at most 2% upscaling): render work follows the screen
        factor = int(min(max(1.0 / max(self.zoom_factor(), 1e-9) + 0.02, 1.0), MAX_DOWNSAMPLE))
        if factor == self._factor and not force:
            return
        data = pipe.data(factor)
        self._factor = factor
        if pipe.mode == "rgb":
            self._img.setImage(data, autoLevels=False, levels=None, lut=None)
        else:
            self._img.setImage(data, autoLevels=False, levels=pipe.levels, lut=self._lut)
        h, w = data.shape[:2]
        self._img.setRect(QtCore.QRectF(0, 0, w * factor, h * factor))

    # ================================================================== geometry
    def view_box(self) -> pg.ViewBox:
        return self._vb

    def image_group(self) -> pg.ItemGroup:
        """Parent of everything drawn in image pixel coordinates."""
        return self._group

    def image_item(self) -> pg.ImageItem:
        return self._img

    def reset_view(self) -> None:
        """Default window, no inversion/rotation/flip, zoom to fit; cancels a measurement being drawn."""
        if self._image is None:
            return
        self._layer.cancel()
        self._user_invert = False
        self._orient = QtGui.QTransform()
        self._apply_group_transform()
        if self._image.is_color:
            self._refresh_lut()
            self._update_resolution(force=True)
        else:
            self._set_voi(*self._default_voi())
        self.zoom_fit()
        self._update_corner()

    # ================================================================== tools and measurements
    def set_tool(self, name: str) -> None:
        if name not in TOOLS:
            raise ValueError(f"unknown tool {name!r}; expected one of {', '.join(TOOLS)}")
        self._layer.cancel()
        self._handler.tool = name
        for a in self._actions:
            if a.data() == name:
                a.setChecked(True)

    def tool(self) -> str:
        return self._handler.tool

    def measurements(self) -> list[Measurement]:
        return self._layer.measurements()

    def selected_measurement(self) -> Measurement | None:
        return self._layer.selected()

    def delete_selected_measurement(self) -> None:
        self._layer.delete_selected()

    def clear_measurements(self) -> None:
        self._layer.clear()

    def forget_measurements(self, keys: list[str] | None = None) -> None:
        """Drop remembered measurements of other images (all when ``keys`` is None): study closed."""
        self._layer.forget(keys)

    def measurement_layer(self) -> MeasurementLayer:
        return self._layer

    def _measure_context(self) -> MeasureContext | None:
        img, pipe = self._image, self._pipeline
        if img is None or pipe is None:
            return None
        unit = (
            "HU"
            if img.meta.modality == "CT" and (img.rescale_slope != 1 or img.rescale_intercept != 0)
            else ""
        )
        return MeasureContext(img.shape, pipe.modality_region, img.meta.pixel_spacing, unit)

    # ================================================================== overlays
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

    def set_magnifier(self, on: bool) -> None:
        self._magnifier_on = bool(on)
        if not on:
            self._magnifier.hide()
        self._sync_check("viewer_magnifier", self._magnifier_on)

    def corner_text(self) -> dict[str, list[str]]:
        return self._corner.lines()

    def _update_corner(self) -> None:
        img = self._image
        if img is None:
            self._corner.set_lines({})
            return
        state = ViewState(
            frame=self._frame,
            n_frames=img.n_frames,
            window=None if img.is_color else self.window(),
            window_label=self._voi_label,
            zoom=self.zoom_factor(),
            inverted_by_user=self._user_invert,
        )
        self._corner.set_lines(corner_lines(img.meta, state))

    def _patch(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray | None:
        return self._pipeline.rendered(x0, y0, x1, y1, self._lut) if self._pipeline is not None else None

    # ================================================================== export and actions
    def actions(self) -> list[QtGui.QAction]:  # noqa: D102 (QWidget.actions, with our actions)
        return list(self._actions)

    def _sync_check(self, object_name: str, checked: bool) -> None:
        for a in self._actions:
            if a.objectName() == object_name and a.isChecked() != checked:
                a.blockSignals(True)
                a.setChecked(checked)
                a.blockSignals(False)

    # ================================================================== events
    def _on_resized(self) -> None:
        if self._fit_mode:
            self.zoom_fit()
        self._corner.setGeometry(self._canvas.viewport().rect())

    def _on_view_changed(self, *_args) -> None:
        self._vb.updateMatrix()  # apply the new range now, so mapping functions are current
        self._update_resolution()
        self._update_corner()

    def _on_mouse_moved(self, scene_pos: QtCore.QPointF) -> None:
        img = self._image
        if img is None:
            return
        self._handler.cursor_moved(scene_pos)
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
        assert self._pipeline is not None and self._image is not None
        if self._image.is_color:
            r, g, b = (int(v) for v in self._image.frames[self._frame][row, col][:3])
            return f"{col}, {row}: R {r} G {g} B {b}"
        v = float(self._pipeline.modality_region(row, row + 1, col, col + 1)[0, 0])
        text = f"{v:.0f}" if math.isfinite(v) and v == int(v) else f"{v:.4g}"
        return f"{col}, {row}: {text}"

    def leaveEvent(self, ev: QtCore.QEvent) -> None:
        self._magnifier.hide()
        self.cursorInfo.emit("")
        super().leaveEvent(ev)
