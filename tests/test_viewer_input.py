"""The viewer under real input: QTest mouse moves, presses and releases through the view's viewport
(issue 10 item 2: the angle tool lost the vertex click under a real mouse)."""

from __future__ import annotations

import os

import pytest
from PySide6 import QtCore, QtWidgets
from PySide6.QtTest import QTest

from app.viewer import ImageViewer
from tests.test_viewer import synthetic

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
Btn = QtCore.Qt.MouseButton


@pytest.fixture
def viewer(qtbot) -> ImageViewer:
    v = ImageViewer()
    qtbot.addWidget(v)
    v.resize(900, 700)
    v.show()
    qtbot.waitExposed(v)
    return v


def viewport(v: ImageViewer) -> QtWidgets.QWidget:
    return v.findChild(QtWidgets.QGraphicsView).viewport()


def to_viewport(v: ImageViewer, x: float, y: float) -> QtCore.QPoint:
    canvas = v.findChild(QtWidgets.QGraphicsView)
    return canvas.viewportTransform().map(v.image_group().mapToScene(QtCore.QPointF(x, y))).toPoint()


def move_to(qtbot, vp: QtWidgets.QWidget, start: QtCore.QPoint, end: QtCore.QPoint, steps: int = 5) -> None:
    """The mouse travels to ``end`` as a hand moves it (several moves, more than 10 ms apart)."""
    for i in range(1, steps + 1):
        p = start + (end - start) * (i / steps)
        QTest.mouseMove(vp, p)
        qtbot.wait(15)


@pytest.mark.parametrize("pause_ms", [30, 1500])
def test_angle_from_three_real_clicks(qtbot, viewer, pause_ms):
    viewer.set_image(synthetic(rows=400, cols=600))
    viewer.set_tool("angle")
    vp = viewport(viewer)
    points = [to_viewport(viewer, x, y) for x, y in ((500, 100), (100, 100), (100, 350))]
    here = QtCore.QPoint(5, 5)
    for p in points:
        move_to(qtbot, vp, here, p)
        QTest.mousePress(vp, Btn.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier, p)
        qtbot.wait(40)
        QTest.mouseRelease(vp, Btn.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier, p)
        qtbot.wait(pause_ms)
        here = p
    (m,) = viewer.measurements()
    assert m.kind == "angle" and len(m.points) == 3
    vx, vy = m.points[1]
    assert abs(vx - 100) < 3 and abs(vy - 100) < 3  # the vertex is where the second click was
    assert m.numbers["deg"] == pytest.approx(90.0, abs=1.0)
    assert m.value.endswith("°")


def test_angle_survives_a_shaky_first_click(qtbot, viewer):
    """A press, a 2-pixel wobble held over half a second (pyqtgraph then calls it a drag), a release."""
    viewer.set_image(synthetic(rows=400, cols=600))
    viewer.set_tool("angle")
    vp = viewport(viewer)
    a, b, c = (to_viewport(viewer, x, y) for x, y in ((500, 100), (100, 100), (100, 350)))
    move_to(qtbot, vp, QtCore.QPoint(5, 5), a)
    QTest.mousePress(vp, Btn.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier, a)
    qtbot.wait(600)
    QTest.mouseMove(vp, a + QtCore.QPoint(2, 1))
    qtbot.wait(20)
    QTest.mouseRelease(vp, Btn.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier, a + QtCore.QPoint(2, 1))
    qtbot.wait(30)
    for start, p in ((a, b), (b, c)):
        move_to(qtbot, vp, start, p)
        QTest.mouseClick(vp, Btn.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier, p)
        qtbot.wait(30)
    (m,) = viewer.measurements()
    assert len(m.points) == 3 and m.numbers["deg"] == pytest.approx(90.0, abs=1.5)


def test_angle_from_a_drag_then_a_click(qtbot, viewer):
    """Dragging places the first arm (A to the vertex); a click then places the third point."""
    viewer.set_image(synthetic(rows=400, cols=600))
    viewer.set_tool("angle")
    vp = viewport(viewer)
    a, b, c = (to_viewport(viewer, x, y) for x, y in ((500, 100), (100, 100), (100, 350)))
    move_to(qtbot, vp, QtCore.QPoint(5, 5), a)
    QTest.mousePress(vp, Btn.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier, a)
    qtbot.wait(20)
    move_to(qtbot, vp, a, b, steps=8)
    QTest.mouseRelease(vp, Btn.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier, b)
    qtbot.wait(30)
    move_to(qtbot, vp, b, c)
    QTest.mouseClick(vp, Btn.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier, c)
    qtbot.wait(30)
    (m,) = viewer.measurements()
    assert len(m.points) == 3 and m.numbers["deg"] == pytest.approx(90.0, abs=1.0)
    vx, vy = m.points[1]
    assert abs(vx - 100) < 3 and abs(vy - 100) < 3
