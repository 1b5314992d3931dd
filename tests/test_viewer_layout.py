"""The viewport grid (compare with prior): viewports with their own images, optional sync of window,
zoom/pan and frame, series dragged from the browser, heatmaps and measurements per viewport."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from app.browser.tree import SERIES_MIME
from app.viewer import ImageViewer
from app.viewer.layout import ViewerGrid
from tests.test_viewer import synthetic


@pytest.fixture
def grid(qtbot):
    g = ViewerGrid(ImageViewer())
    qtbot.addWidget(g)
    g.resize(1000, 500)
    g.show()
    qtbot.waitExposed(g)
    return g


def frames(n=3, uid="x"):
    one = synthetic()
    img = dataclasses.replace(one, frames=np.stack([one.frames[0]] * n))
    img.meta = dataclasses.replace(img.meta, sop_instance_uid=uid)
    return img


def test_two_viewports_with_their_own_images_and_sync(qtbot, grid):
    grid.presenter.set_layout_name("1x2")
    left, right = grid.viewers()
    qtbot.wait(30)
    assert left.isVisible() and right.isVisible() and left is not right
    assert left.width() < 520 and right.width() < 520  # side by side
    left.set_image(frames(uid="a"), "a")
    right.set_image(frames(uid="b"), "b")
    left.set_window(1000, 500)
    assert right.window().center != 1000  # not synced yet
    for kind in ("window", "frame", "zoom"):
        grid.presenter.set_sync(kind, True)
    left.set_window(1200, 700)
    assert (right.window().center, right.window().width) == (1200, 700)
    right.set_frame(2)
    assert left.frame() == 2
    left.zoom_by(2.0)
    qtbot.wait(20)
    zl, zr = left.camera()[0], right.camera()[0]
    assert zl == pytest.approx(2.0, rel=0.05) and zr == pytest.approx(zl, rel=0.02)
    # measurements and heatmap layers stay in their viewport
    left.measurement_layer().begin("distance", (10, 10))
    left.measurement_layer().drag_to((100, 10))
    left.measurement_layer().finish()
    assert len(left.measurements()) == 1 and right.measurements() == []
    left.add_overlay_layer(QtWidgets.QGraphicsRectItem(0, 0, 5, 5), "Heatmap")
    assert left.overlay_layer("Heatmap") is not None and right.overlay_layer("Heatmap") is None


def drag_and_drop(target: QtWidgets.QWidget, mime: QtCore.QMimeData) -> bool:
    centre = target.rect().center()
    enter = QtGui.QDragEnterEvent(centre, QtCore.Qt.DropAction.CopyAction, mime,
                                  QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier)
    QtWidgets.QApplication.sendEvent(target, enter)
    if not enter.isAccepted():
        return False
    drop = QtGui.QDropEvent(QtCore.QPointF(centre), QtCore.Qt.DropAction.CopyAction, mime,
                            QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier)
    QtWidgets.QApplication.sendEvent(target, drop)
    return drop.isAccepted()


def test_a_series_dropped_on_a_viewport_loads_there(qtbot, grid, shared_data):
    grid.presenter.set_layout_name("1x2")
    primary_drops = []
    grid.primaryDropped.connect(primary_drops.append)
    path = str(shared_data / "dicom" / "rsna_cxr_pa.dcm")
    mime = QtCore.QMimeData()
    mime.setData(SERIES_MIME, path.encode())
    assert drag_and_drop(grid.findChild(QtWidgets.QFrame, "viewport_1"), mime)
    qtbot.waitUntil(lambda: grid.viewer(1).image() is not None, timeout=30_000)
    assert grid.viewer(1).image().meta.modality == "CR" and grid.viewer(0).image() is None
    assert drag_and_drop(grid.findChild(QtWidgets.QFrame, "viewport_0"), mime)
    assert primary_drops == [path]


def test_captions_and_back_to_one_viewport(grid):
    grid.presenter.set_layout_name("2x2")
    assert len(grid.viewers()) == 4
    grid.viewer(1).set_image(synthetic())
    grid.presenter.set_caption(1, "Prior 2023-01-10")
    assert grid.viewer(1).corner_text()["tr"][0] == "Prior 2023-01-10"
    grid.presenter.single()
    assert len(grid.viewers()) == 1 and not grid.viewer(1).isVisible()



def test_dragging_a_series_row_carries_its_image_path(qtbot):
    from app.browser import BrowserPanel
    from ml.imaging.image import ImageMeta
    from ml.imaging.index import InstanceEntry

    panel = BrowserPanel()
    qtbot.addWidget(panel)
    meta = ImageMeta(path="/data/chest.dcm", patient_id="P1", patient_name="A^B", study_uid="1.2", series_uid="1.2.3",
                     sop_instance_uid="1.2.3.4", modality="DX", study_date="20240301")
    panel.add_instances([InstanceEntry(path="/data/chest.dcm", meta=meta, is_image=True, source="/data/chest.dcm")])
    items = []
    it = QtWidgets.QTreeWidgetItemIterator(panel.tree)
    while it.value():
        items.append(it.value())
        it += 1
    series = [i for i in items if panel.entry_for(i) is not None]
    assert series
    mime = panel.tree.mimeData([series[0]])
    assert bytes(mime.data(SERIES_MIME)).decode() == "/data/chest.dcm"
    assert panel.tree.dragEnabled()


def test_the_keys_act_on_the_viewport_that_has_the_focus(qtbot):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from app.viewer.shortcuts import install_window_shortcuts
    from app.viewer.state import IDENTITY, ROTATE_CW

    window = QtWidgets.QMainWindow()
    qtbot.addWidget(window)
    primary = ImageViewer()
    grid = ViewerGrid(primary)
    window.setCentralWidget(grid)
    install_window_shortcuts(window, primary)
    window.resize(900, 500)
    window.show()
    window.activateWindow()
    qtbot.waitExposed(window)
    grid.presenter.set_layout_name("1x2")
    left, right = grid.viewers()
    left.set_image(synthetic())
    right.set_image(synthetic())
    canvas = right.findChild(QtWidgets.QGraphicsView)
    canvas.setFocus(Qt.FocusReason.MouseFocusReason)
    qtbot.waitUntil(lambda: grid.active == 1, timeout=2000)
    QTest.keyClick(canvas, Qt.Key.Key_BracketRight)
    QTest.keyClick(canvas, Qt.Key.Key_D)
    assert right.state.orientation == ROTATE_CW and right.tool() == "distance"
    assert left.state.orientation == IDENTITY and left.tool() == "wl"
    left_canvas = left.findChild(QtWidgets.QGraphicsView)
    left_canvas.setFocus(Qt.FocusReason.MouseFocusReason)
    qtbot.waitUntil(lambda: grid.active == 0, timeout=2000)
    QTest.keyClick(left_canvas, Qt.Key.Key_I)
    assert left.state.inverted and not right.state.inverted
    wl = next(a for a in primary.actions() if a.data() == "wl")
    assert wl.isChecked()  # the tool bar shows the active viewport's tool
