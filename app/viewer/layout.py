"""Several viewports side by side (1x1, 1x2, 2x2): one ImageViewer each, with its own display state.

:class:`ViewerGrid` is the Qt view of :class:`app.viewer.layout_presenter.LayoutPresenter`: the
first viewport is the window's main viewer (the current image: analysis, tags and export act on
it); the others are created on first use and load their own images (a prior study, a lateral, a
series dragged from the browser). Zoom/pan goes through each viewport's camera model, so the
presenter can sync it like window and frame. Heatmaps and measurements stay per viewport.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from app.browser.loader import ImageLoader
from app.browser.tree import SERIES_MIME
from app.viewer.events import Event
from app.viewer.layout_presenter import CameraValue, LayoutPresenter
from app.viewer.view import ImageViewer
from ml.imaging.index import InstanceEntry


class ViewportFrame(QtWidgets.QFrame):
    """A viewport's frame: a thin border (highlighted when active) and a drop target for series."""

    dropped = QtCore.Signal(int, str)  # viewport index, image path

    def __init__(self, index: int, viewer: ImageViewer):
        super().__init__()
        self.index = index
        self.viewer = viewer
        self.setObjectName(f"viewport_{index}")
        self.setAcceptDrops(True)
        self.setFrameShape(QtWidgets.QFrame.Shape.Box)
        self.setLineWidth(1)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(1, 1, 1, 1)
        lay.addWidget(viewer)

    def set_active(self, active: bool) -> None:
        """A highlighted border on the viewport the keys act on (when there are several)."""
        self.setStyleSheet(f"#{self.objectName()} {{ border: 1px solid {'#e0a020' if active else '#3a4048'}; }}")

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasFormat(SERIES_MIME):
            event.acceptProposedAction()
        else:
            event.ignore()  # files from outside: the window opens them

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasFormat(SERIES_MIME):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        path = bytes(event.mimeData().data(SERIES_MIME)).decode("utf-8")
        if not path:
            event.ignore()
            return
        event.acceptProposedAction()
        self.dropped.emit(self.index, path)


class ViewerGrid(QtWidgets.QWidget):
    """The viewports; ``primaryDropped(path)``: a series dropped on the first one (the window shows it)."""

    primaryDropped = QtCore.Signal(str)
    viewerCreated = QtCore.Signal(object)  # a new viewport's ImageViewer (e.g. for the DICOM-objects wiring)

    def __init__(self, primary: ImageViewer, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("viewerGrid")
        self._viewers: list[ImageViewer] = []
        self._frames: list[ViewportFrame] = []
        self._loaders: dict[int, ImageLoader] = {}
        self._grid = QtWidgets.QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(2)
        self._applying: int | None = None
        self._viewers.append(primary)
        self.active = 0  # the viewport the window's keys, menus and tool bar act on
        self.presenter = LayoutPresenter(self, primary.state)
        self._wrap(0, primary)
        self.show_grid(1, 1)
        primary.route_actions(self.active_viewer)
        app = QtWidgets.QApplication.instance()
        if app is not None:
            app.focusChanged.connect(self._on_focus)

    def active_viewer(self) -> ImageViewer:
        return self._viewers[self.active if self.active < self.presenter.count else 0]

    def set_active(self, index: int) -> None:
        self.active = index if 0 <= index < self.presenter.count else 0
        for i, frame in enumerate(self._frames):
            frame.set_active(i == self.active and self.presenter.count > 1)
        tool = self.active_viewer().state.tool
        for action in self._viewers[0].actions():  # the tool bar shows the active viewport's tool
            if action.data() == tool and not action.isChecked():
                action.setChecked(True)

    def _on_focus(self, _old: QtWidgets.QWidget | None, new: QtWidgets.QWidget | None) -> None:
        if new is None:
            return
        for i, viewer in enumerate(self._viewers[: self.presenter.count]):
            if viewer is new or viewer.isAncestorOf(new):
                if i != self.active:
                    self.set_active(i)
                return

    # ------------------------------------------------------------------ viewports
    def viewer(self, index: int) -> ImageViewer:
        """Viewport ``index``'s viewer (created on first use, with the presenter's display state)."""
        while len(self._viewers) <= index:
            i = len(self._viewers)
            v = ImageViewer(state=self.presenter.viewport(i).state)
            for action in v.actions():  # the window's keys act on the main viewer; no ambiguous keys
                v.removeAction(action)
            self._viewers.append(v)
            self._wrap(i, v)
            self.viewerCreated.emit(v)
        return self._viewers[index]

    def viewers(self) -> list[ImageViewer]:
        """The viewers shown now, in reading order (left to right, top to bottom)."""
        return [self.viewer(i) for i in range(self.presenter.count)]

    def _wrap(self, index: int, viewer: ImageViewer) -> None:
        frame = ViewportFrame(index, viewer)
        frame.dropped.connect(self._on_dropped)
        self._frames.append(frame)
        vp = self.presenter.viewport(index)
        vp.camera.changed.connect(lambda event, i=index: self._apply_camera(i, event))
        viewer.view_box().sigRangeChanged.connect(lambda *_a, i=index: self._report_camera(i))
        viewer.imageChanged.connect(lambda i=index: self._report_camera(i))

    # ------------------------------------------------------------------ LayoutView
    def show_grid(self, rows: int, cols: int) -> None:
        for frame in self._frames:
            self._grid.removeWidget(frame)
            frame.hide()
        for i in range(rows * cols):
            self.viewer(i)
            frame = self._frames[i]
            self._grid.addWidget(frame, i // cols, i % cols)
            frame.show()
        for r in range(2):
            self._grid.setRowStretch(r, 1 if r < rows else 0)
        for c in range(2):
            self._grid.setColumnStretch(c, 1 if c < cols else 0)
        self._frames[0].setFrameShape(
            QtWidgets.QFrame.Shape.Box if rows * cols > 1 else QtWidgets.QFrame.Shape.NoFrame)
        self.set_active(self.active if self.active < rows * cols else 0)

    def load(self, index: int, entry: InstanceEntry) -> None:
        self.load_path(index, entry.path)

    def show_caption(self, index: int, text: str) -> None:
        self.viewer(index).set_caption(text)

    # ------------------------------------------------------------------ loading and dropping
    def load_path(self, index: int, path: str) -> None:
        """Decode ``path`` in the background and show it in viewport ``index`` (not the first)."""
        loader = self._loaders.get(index)
        if loader is None:
            loader = ImageLoader(parent=self)
            loader.loaded.connect(lambda p, image, i=index: self.viewer(i).set_image(image, p))
            self._loaders[index] = loader
        loader.load(path)

    def _on_dropped(self, index: int, path: str) -> None:
        if index == 0:
            self.primaryDropped.emit(path)
        else:
            self.presenter.set_caption(index, "")
            self.load_path(index, path)

    # ------------------------------------------------------------------ camera relay
    def _report_camera(self, index: int) -> None:
        if self._applying is not None or index >= len(self._viewers):
            return
        zoom, cx, cy = self._viewers[index].camera()
        self._applying = index
        try:
            self.presenter.viewport(index).camera.set(CameraValue(round(zoom, 4), round(cx, 4), round(cy, 4)))
        finally:
            self._applying = None

    def _apply_camera(self, index: int, event: Event) -> None:
        if self._applying == index or index >= len(self._viewers):
            return  # the change came from this viewport
        value: CameraValue = event.value
        previous, self._applying = self._applying, index
        try:
            self._viewers[index].set_camera(value.zoom, value.cx, value.cy)
        finally:
            self._applying = previous
