"""File > Save measurements as DICOM SR / Save view as DICOM Secondary Capture, and our DICOM
objects shown back over their image (the Qt side of :mod:`app.viewer.dicom_objects`).

:func:`install` wires a main window (viewer, indexer, close-all action, File menu): every SR or
Parametric Map that is opened, dropped or retrieved goes to the presenter, which puts it on its
image. The Parametric Map is drawn as a heatmap layer by the shared colouring rule of
``ml.imaging.overlay`` (the analysis panel's heatmap uses the same rule; app.viewer does not import
app.analysis).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6 import QtGui, QtWidgets

from app.browser.rules import OVERLAY_CLASSES
from app.viewer.dicom_objects import DicomObjectsPresenter, ResultObjects
from app.viewer.legend import Legend
from ml.errors import CxrError
from ml.explain import METHOD_LABELS
from ml.imaging.overlay import heatmap_rgba

MAP_LAYER = "Parametric map"
MAP_OPACITY, MAP_THRESHOLD, MAP_COLOURS = 0.45, 0.2, "inferno"  # the analysis heatmap's defaults


class MapLayer:
    """A Parametric Map over the image: one row-major ImageItem in image pixel coordinates."""

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        self.item = pg.ImageItem(axisOrder="row-major")
        self.item.setObjectName("parametricMapItem")
        self.overlay: Any = None

    def show(self, overlay: Any) -> None:
        self.overlay = overlay
        if overlay is None:
            self.viewer.remove_overlay_layer(MAP_LAYER)
            self.viewer.set_legend(None)
            return
        lut = pg.colormap.get(MAP_COLOURS).getLookupTable(0.0, 1.0, 256, alpha=True)
        rgba = heatmap_rgba(overlay.values, lut, MAP_THRESHOLD)
        self.item.setImage(rgba, autoLevels=False, levels=(0, 255))
        self.item.setRect(0, 0, rgba.shape[1], rgba.shape[0])  # one map value per image pixel
        self.item.setOpacity(MAP_OPACITY)
        self.item.setVisible(True)
        self.viewer.add_overlay_layer(self.item, MAP_LAYER)
        ramp = lut[:, :3].astype("uint8")
        self.viewer.set_legend(Legend(ramp, low="weak", high="strongest", title=f"{METHOD_LABELS.get(overlay.method, overlay.method)} (DICOM)"))


class _ViewerPart:
    """The presenter's view for one viewport: its map layer and measurement layer."""

    def __init__(self, controller: DicomObjectsController, viewer: Any) -> None:
        self.controller = controller
        self.viewer = viewer
        self.map_layer = MapLayer(viewer)

    def show_map(self, overlay: object | None) -> None:
        self.map_layer.show(overlay)

    def reload_measurements(self) -> None:
        self.viewer.measurement_layer().switch(self.viewer.state.key)

    def status(self, text: str) -> None:
        self.controller.status(text)


class DicomObjectsController:
    """One main window's wiring: a presenter per viewport over one shared set of result objects,
    and the two File menu actions (they act on the active viewport)."""

    def __init__(self, window: Any) -> None:
        self.window = window
        self.viewer = window.viewer
        self.objects = ResultObjects()
        self._presenters: dict[int, DicomObjectsPresenter] = {}
        self.presenter = self.attach(self.viewer)
        self.save_sr_action = QtGui.QAction("Save measurements as DICOM &SR…", self.viewer)
        self.save_sr_action.setObjectName("save_measurements_sr")
        self.save_sr_action.setStatusTip("The image's distance, angle and ROI measurements as a DICOM "
                                         "structured report in its study (not for diagnostic use)")
        self.save_sr_action.triggered.connect(self.save_measurements_dialog)
        self.save_sc_action = QtGui.QAction("Save view as DICOM Secondary &Capture…", self.viewer)
        self.save_sc_action.setObjectName("save_secondary_capture")
        self.save_sc_action.setStatusTip("The image as displayed with its heatmap burned in, as a new "
                                         "series of its study (not for diagnostic use)")
        self.save_sc_action.triggered.connect(self.save_capture_dialog)
        self._grid = getattr(getattr(window, "layout_controller", None), "grid", None)
        if self._grid is not None:  # the other viewports of View > Layout
            self._grid.viewerCreated.connect(self.attach)
            for viewer in self._grid.viewers():
                self.attach(viewer)
        indexer = getattr(window, "indexer", None)
        if indexer is not None:
            indexer.batch.connect(lambda _rid, entries: self.entries_added(entries))
            indexer.finished.connect(lambda _rid, index: self.entries_added(list(index.instances())))
        browser = getattr(window, "browser", None)
        if browser is not None and hasattr(browser, "result_reference"):
            browser.result_reference = self.objects.reference_of  # a result's row shows its image
        close_all = getattr(window, "close_all_action", None)
        if close_all is not None:
            close_all.triggered.connect(self.forget)

    def attach(self, viewer: Any) -> DicomObjectsPresenter:
        """Show result objects in ``viewer`` too (the main viewer and each layout viewport)."""
        if id(viewer) not in self._presenters:
            presenter = DicomObjectsPresenter(viewer.state, _ViewerPart(self, viewer), self.objects)
            self._presenters[id(viewer)] = presenter
            presenter.image_shown()
        return self._presenters[id(viewer)]

    def active(self) -> tuple[Any, DicomObjectsPresenter]:
        """The viewport the window's menus act on, and its presenter."""
        viewer = self._grid.active_viewer() if self._grid is not None else self.viewer
        return viewer, self.attach(viewer)

    def forget(self) -> None:
        for presenter in self._presenters.values():
            presenter.forget()

    def status(self, text: str) -> None:
        bar = getattr(self.window, "statusBar", None)
        if callable(bar):
            bar().showMessage(text, 10000)

    # ------------------------------------------------------------------ intent
    def entries_added(self, entries: list) -> None:
        paths = [e.path for e in entries if e.meta.sop_class_uid in OVERLAY_CLASSES]
        if paths:
            self.active()[1].open_paths(paths)

    def _ask_path(self, title: str, suffix: str) -> str:
        image = self.active()[0].image()
        stem = Path(str(image.meta.path or "image")).stem if image is not None else "image"
        start = getattr(getattr(self.window, "prefs", None), "last_directory", "") or str(Path.home())
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self.window, title, str(Path(start) / f"{stem}_{suffix}.dcm"), "DICOM files (*.dcm)")
        return path

    def save_measurements_dialog(self) -> None:
        if not self.active()[1].can_save_measurements():
            self.status("There are no measurements on this image to save.")
            return
        path = self._ask_path("Save measurements as DICOM SR", "measurements")
        if path:
            self.save_measurements(path)

    def save_measurements(self, path: str) -> Path | None:
        return self._save(path, lambda: self.active()[1].save_measurements(path), "the measurements",
                          "Measurements saved as a DICOM SR")

    def save_capture_dialog(self) -> None:
        if self.active()[0].image() is None:
            return
        path = self._ask_path("Save view as DICOM Secondary Capture", "capture")
        if path:
            self.save_capture(path)

    def save_capture(self, path: str) -> Path | None:
        def write() -> Path:
            viewer, presenter = self.active()
            return presenter.save_capture(path, viewer.burned_in())

        return self._save(path, write, "the secondary capture", "View saved as a DICOM Secondary Capture")

    def _save(self, path: str, write: Callable[[], Path], what: str, done: str) -> Path | None:
        """Run ``write``; one status line either way (a readable error, never a traceback)."""
        try:
            written = write()
        except CxrError as exc:
            self.status(f"Could not save {what}: {exc}")
            return None
        except OSError as exc:
            self.status(f"Could not write {Path(path).name}: {exc.strerror or exc}")
            return None
        self.status(f"{done}: {written.name} (not for diagnostic use)")
        return written


def install(window: Any) -> DicomObjectsController:
    """Wire ``window`` (a main window) and put the two actions in its File menu after the PNG exports."""
    controller = DicomObjectsController(window)
    anchor = getattr(window, "export_plain_action", None)
    menus = [m for m in (anchor.associatedObjects() if anchor is not None else []) if isinstance(m, QtWidgets.QMenu)]
    if menus:
        menu, actions = menus[0], menus[0].actions()
        after = actions.index(anchor) + 1
        before = actions[after] if after < len(actions) else None
        menu.insertActions(before, [controller.save_sr_action, controller.save_sc_action])
    if hasattr(window, "file_actions"):
        window.file_actions += [controller.save_sr_action, controller.save_sc_action]
    window.dicom_objects = controller
    return controller
