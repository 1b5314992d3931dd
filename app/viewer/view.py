"""ImageViewer: pyqtgraph wrapped once. Image, window/level, zoom/pan/rotate/flip, overlays, tools.

The display state (image, frame, VOI, inversion, orientation, tool, measurements per image) is
the evented model :class:`app.viewer.state.DisplayState` (``viewer.state``); the view subscribes
to its events and renders. Mouse tools and keyboard actions change the model; the methods below
(``set_window``, ``rotate90``, ...) are the same requests for code that holds the view.

Scene layout: ViewBox -> image group (transform = centre, then rotation/flip) -> ImageItem (scaled
when a downsampled copy is shown), overlay layers (heatmaps) and measurement ROIs, all in image
pixel coordinates. Corner text and the magnifier are widgets over the viewport.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app.viewer.actions import ActionTarget, build_actions
from app.viewer.corner_text import CornerTextOverlay
from app.viewer.events import Event
from app.viewer.export import ExportMixin
from app.viewer.geometry import GeometryMixin
from app.viewer.legend import LegendOverlay
from app.viewer.magnifier import Magnifier
from app.viewer.measure import Measurement
from app.viewer.measurements import MeasureContext, MeasurementLayer
from app.viewer.overlays import OverlayMixin
from app.viewer.pipeline import FramePipeline
from app.viewer.state import DisplayState
from app.viewer.tools import InteractionViewBox, ToolHandler
from ml.imaging import display
from ml.imaging.image import Window, XRayImage

MAX_DOWNSAMPLE = 64


class _Canvas(pg.GraphicsView):
    resized = QtCore.Signal()

    def resizeEvent(self, ev):
        super().resizeEvent(ev)
        self.resized.emit()


class ImageViewer(GeometryMixin, ExportMixin, OverlayMixin, QtWidgets.QWidget):
    """The image view. See the module docstring and the method docstrings for the API."""

    imageChanged = QtCore.Signal()
    windowChanged = QtCore.Signal(float, float)
    cursorInfo = QtCore.Signal(str)
    measurementsChanged = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None, state: DisplayState | None = None):
        super().__init__(parent)
        self.state = state or DisplayState()
        self._pipeline: FramePipeline | None = None
        self._fit_mode = True
        self._factor: int | None = None
        self._lut: np.ndarray | None = None
        self._overlays: dict[str, pg.GraphicsObject] = {}
        self._caption = ""

        self._handler = ToolHandler(self.state, self)
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
        self._layer = MeasurementLayer(self._group, self._measure_context, self.state.measurements,
                                       bounds=self._vb.sceneBoundingRect)
        self._layer.changed.connect(self.measurementsChanged)
        self._corner = CornerTextOverlay(self._canvas.viewport())
        self._magnifier = Magnifier(self._canvas.viewport())
        self._legend = LegendOverlay(self._canvas.viewport())
        self._magnifier_on = False
        self._cine = QtCore.QTimer(self)
        self._cine.timeout.connect(lambda: self.state.step_frame(1, wrap=True))

        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self._canvas)
        self._canvas.resized.connect(self._on_resized)
        self._vb.sigRangeChanged.connect(self._on_view_changed)
        self._canvas.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self._action_target = ActionTarget(self.state, self)
        self._actions = build_actions(self.state, self, self, self._action_target)
        self.addActions(self._actions)

        events = self.state.events
        events.image.connect(self._on_image)
        events.frame.connect(self._on_frame)
        events.window.connect(self._on_window)
        events.invert.connect(self._on_invert)
        events.orientation.connect(self._on_orientation)
        events.tool.connect(self._on_tool)

    @property
    def _image(self) -> XRayImage | None:
        return self.state.image

    # ================================================================== image and frames
    def set_image(self, image: XRayImage, key: str | None = None) -> None:
        """Show ``image`` (already decoded) at fit zoom with its default window.

        ``key`` (e.g. the SOP Instance UID or the path) keeps the measurements of this image while
        the study is open; without it the SOP Instance UID, else the path, is used.
        """
        self.set_cine(False)
        self.state.set_image(image, key)

    def clear(self) -> None:
        """Show nothing (measurements stay remembered for their image keys)."""
        self.set_cine(False)
        self.state.set_image(None)

    def image(self) -> XRayImage | None:
        return self.state.image

    def n_frames(self) -> int:
        return self.state.n_frames()

    def frame(self) -> int:
        return self.state.frame

    def set_frame(self, index: int) -> None:
        self.state.set_frame(index)

    def step_frame(self, step: int, wrap: bool = False) -> None:
        self.state.step_frame(step, wrap)

    def set_cine(self, playing: bool, fps: float = 10) -> None:
        playing = bool(playing and self.state.n_frames() > 1)
        if playing:
            self._cine.start(max(int(1000.0 / max(fps, 0.1)), 1))
        else:
            self._cine.stop()
        self._sync_check("viewer_cine", playing)

    def is_playing(self) -> bool:
        return self._cine.isActive()

    def _on_image(self, _event: Event) -> None:
        image = self.state.image
        if image is None:
            self._layer.switch(None)
            self._pipeline, self._lut, self._factor = None, None, None
            self._img.clear()
            self._corner.set_lines({})
            self._magnifier.configure(None, (0, 0))
            self._magnifier.hide()
            self.imageChanged.emit()
            return
        self._load_frame()
        self._refresh_lut()
        self._layer.switch(self.state.key)
        self._magnifier.configure(self._patch, image.shape)
        self._apply_group_transform()
        self.zoom_fit()
        self._update_resolution(force=True)
        self._update_corner()
        self.imageChanged.emit()
        self._emit_window()

    def _on_frame(self, _event: Event) -> None:
        self._load_frame()
        self._refresh_lut()
        self._update_resolution(force=True)
        self._layer.refresh()
        self._update_corner()
        self.imageChanged.emit()

    def _load_frame(self) -> None:
        assert self.state.image is not None
        self._pipeline = FramePipeline(self.state.image, self.state.frame)
        self._factor = None

    # ================================================================== window / level
    def window(self) -> Window:
        """The current VOI as a window (a VOI LUT is described by its input range)."""
        return self.state.window()

    def voi(self) -> display.Voi | None:
        """The VOI in use: a Window or a VoiLut from the file."""
        return self.state.voi

    def set_window(self, center: float, width: float) -> None:
        self.state.set_window(center, width)

    def apply_preset(self, index_or_name: int | str) -> bool:
        """A file preset by 0-based index (keys 1-9), or by name: Lung, Mediastinum, Bone, auto,
        default, or a file window's explanation. Returns False when there is no such preset."""
        return self.state.apply_preset(index_or_name)

    def auto_window(self) -> None:
        self.state.auto_window()

    def toggle_invert(self) -> None:
        self.state.toggle_invert()

    def is_inverted(self) -> bool:
        """True when the view shows the inverse of the standard display (user toggle)."""
        return self.state.inverted

    def value_span(self) -> tuple[float, float]:
        """The range window/level drags are scaled to (modality units)."""
        return self.state.value_span

    def _on_window(self, _event: Event) -> None:
        self._refresh_lut()
        self._update_corner()
        self._emit_window()

    def _on_invert(self, _event: Event) -> None:
        self._refresh_lut()
        if self._pipeline is not None and self._pipeline.mode == "rgb":
            self._update_resolution(force=True)
        self._update_corner()

    def _emit_window(self) -> None:
        image = self.state.image
        if image is not None and not image.is_color:
            w = self.state.window()
            self.windowChanged.emit(float(w.center), float(w.width))

    def _refresh_lut(self) -> None:
        if self._pipeline is None:
            return
        if self._pipeline.mode == "rgb":
            self._lut = None
            if self._pipeline.set_rgb_inverted(self.state.inverted):
                self._factor = None
            return
        self._lut = self._pipeline.lut(self.state.voi, self.state.effective_invert())
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
        if self.state.image is None:
            return
        self._layer.cancel()
        self.state.reset()
        self.zoom_fit()
        self._update_corner()

    # ================================================================== tools and measurements
    def set_tool(self, name: str) -> None:
        self.state.set_tool(name)

    def tool(self) -> str:
        return self.state.tool

    def _on_tool(self, event: Event) -> None:
        self._layer.cancel()
        for a in self._actions:
            if a.data() == event.value:
                a.setChecked(True)

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
        img, pipe = self.state.image, self._pipeline
        if img is None or pipe is None:
            return None
        unit = (
            "HU"
            if img.meta.modality == "CT" and (img.rescale_slope != 1 or img.rescale_intercept != 0)
            else ""
        )
        return MeasureContext(img.shape, pipe.modality_region, img.meta.pixel_spacing, unit)

    # ================================================================== actions and events
    def actions(self) -> list[QtGui.QAction]:  # noqa: D102 (QWidget.actions, with our actions)
        return list(self._actions)

    def route_actions(self, get: Callable[[], ImageViewer] | None) -> None:
        """Let this viewer's actions (keys, menus, tool bar) act on ``get()`` (e.g. a layout's active
        viewport) instead of this viewer; None: back to this viewer."""
        self._action_target.route(None if get is None else lambda: (get().state, get()))

    def _sync_check(self, object_name: str, checked: bool) -> None:
        for a in self._actions:
            if a.objectName() == object_name and a.isChecked() != checked:
                a.blockSignals(True)
                a.setChecked(checked)
                a.blockSignals(False)

    def _on_resized(self) -> None:
        if self._fit_mode:
            self.zoom_fit()
        self._corner.setGeometry(self._canvas.viewport().rect())
        self._legend.place()

    def _on_view_changed(self, *_args) -> None:
        self._vb.updateMatrix()  # apply the new range now, so mapping functions are current
        self._update_resolution()
        self._update_corner()
        self._layer.keep_labels_inside()
