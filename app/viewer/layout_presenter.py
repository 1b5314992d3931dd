"""Viewport layout (1x1, 1x2, 2x2) and its optional sync, Qt-free.

Each viewport has its own :class:`app.viewer.state.DisplayState` (image, window, frame, tool,
measurements) and its own :class:`Camera` (zoom relative to fit, centre as a fraction of the
image), so heatmaps and measurements stay with their viewport. With sync on, a change in one
viewport's model is copied to the others through the models' events:

``window``  centre/width (OHIF's "sync W/L")       ``frame``  the frame index (clamped)
``zoom``    zoom and pan (the camera)

The Qt grid (:mod:`app.viewer.layout`) is the :class:`LayoutView`: it shows the grid, renders
each viewport's models and reports camera changes; a hanging protocol
(:func:`app.viewer.hanging.chest_hanging`) is applied with :meth:`LayoutPresenter.hang`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

from app.viewer.events import Event, EventEmitter
from app.viewer.hanging import Hanging
from app.viewer.state import DisplayState
from ml.imaging.index import InstanceEntry

LAYOUTS = {"1x1": (1, 1), "1x2": (1, 2), "2x1": (2, 1), "2x2": (2, 2)}
SYNC_KINDS = ("window", "zoom", "frame")


@dataclass(frozen=True)
class CameraValue:
    zoom: float = 1.0  # relative to "fit": 1.0 shows the whole image
    cx: float = 0.5  # view centre as a fraction of the image width (0 left, 1 right)
    cy: float = 0.5


class Camera:
    """Zoom/pan of one viewport as a small evented model (``camera.events.changed``)."""

    def __init__(self) -> None:
        self.value = CameraValue()
        self.changed = EventEmitter(self, "camera")

    def set(self, value: CameraValue) -> None:
        if value != self.value:
            self.value = value
            self.changed(value)


@dataclass
class Viewport:
    state: DisplayState
    camera: Camera = field(default_factory=Camera)
    caption: str = ""


class LayoutView(Protocol):
    def show_grid(self, rows: int, cols: int) -> None: ...
    def load(self, index: int, entry: InstanceEntry) -> None: ...
    def show_caption(self, index: int, text: str) -> None: ...


class LayoutPresenter:
    def __init__(self, view: LayoutView, primary: DisplayState | None = None):
        self.view = view
        self.viewports: list[Viewport] = []
        self.rows, self.cols = 1, 1
        self.sync: set[str] = set()
        self._copying = False
        self.viewport(0, primary)

    # ------------------------------------------------------------------ viewports and grid
    def viewport(self, index: int, state: DisplayState | None = None) -> Viewport:
        """Viewport ``index``, created (with its own display state) on first use."""
        while len(self.viewports) <= index:
            i = len(self.viewports)
            vp = Viewport(state if (state is not None and i == index) else DisplayState())
            vp.state.events.window.connect(partial(self._on_window, i))
            vp.state.events.frame.connect(partial(self._on_frame, i))
            vp.camera.changed.connect(partial(self._on_camera, i))
            self.viewports.append(vp)
        return self.viewports[index]

    @property
    def count(self) -> int:
        """How many viewports the grid shows."""
        return self.rows * self.cols

    def set_layout(self, rows: int, cols: int) -> None:
        self.rows, self.cols = max(1, int(rows)), max(1, int(cols))
        for i in range(self.count):
            self.viewport(i)
        self.view.show_grid(self.rows, self.cols)

    def set_layout_name(self, name: str) -> None:
        self.set_layout(*LAYOUTS[name])

    def index_of(self, row: int, col: int) -> int:
        return row * self.cols + col

    def set_caption(self, index: int, text: str) -> None:
        self.viewport(index).caption = text
        self.view.show_caption(index, text)

    # ------------------------------------------------------------------ hanging protocol
    def hang(self, hanging: Hanging) -> None:
        """Lay out the grid and load each cell but the first (the current image, already shown)."""
        self.set_layout(hanging.rows, hanging.cols)
        shown = set()
        for cell in hanging.cells:
            i = self.index_of(cell.row, cell.col)
            shown.add(i)
            self.set_caption(i, cell.caption)
            if i != 0:
                self.view.load(i, cell.entry)
        for i in range(self.count):
            if i not in shown:
                self.set_caption(i, "")

    def single(self) -> None:
        """Back to one viewport without captions."""
        self.set_layout(1, 1)
        self.set_caption(0, "")

    # ------------------------------------------------------------------ sync
    def set_sync(self, kind: str, on: bool) -> None:
        if kind not in SYNC_KINDS:
            raise ValueError(f"unknown sync {kind!r}; expected one of {', '.join(SYNC_KINDS)}")
        (self.sync.add if on else self.sync.discard)(kind)
        if on and self.viewports:
            source = self.viewports[0]
            if kind == "window" and source.state.image is not None:
                self._on_window(0, Event("window", source.state.window()))
            elif kind == "frame":
                self._on_frame(0, Event("frame", source.state.frame))
            elif kind == "zoom":
                self._on_camera(0, Event("camera", source.camera.value))

    def _others(self, index: int) -> list[Viewport]:
        return [vp for i, vp in enumerate(self.viewports[: self.count]) if i != index]

    def _copy(self, kind: str, index: int, apply) -> None:
        if kind not in self.sync or self._copying or index >= self.count:
            return
        self._copying = True
        try:
            for vp in self._others(index):
                apply(vp)
        finally:
            self._copying = False

    def _on_window(self, index: int, event: Event) -> None:
        w = event.value
        self._copy("window", index, lambda vp: vp.state.set_window(w.center, w.width))

    def _on_frame(self, index: int, event: Event) -> None:
        self._copy("frame", index, lambda vp: vp.state.set_frame(event.value))

    def _on_camera(self, index: int, event: Event) -> None:
        self._copy("zoom", index, lambda vp: vp.camera.set(event.value))
