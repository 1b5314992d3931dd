"""Viewer shortcuts are window-wide unless a text field has focus (issue 10 item 4): after using the
analysis panel, `]` still rotates; typing in the tag search still types."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PySide6 import QtWidgets
from PySide6.QtCore import QSettings, Qt
from PySide6.QtTest import QTest

from app.main_window import MainWindow
from app.settings import Settings
from app.viewer.state import IDENTITY, ROTATE_CW
from app.workers import running_jobs
from ml.imaging.image import XRayImage
from tests.test_viewer import synthetic


@pytest.fixture
def window(qtbot, tmp_path):
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    w = MainWindow(Settings(tmp_path / "settings.ini"))
    qtbot.addWidget(w)
    w.show()
    w.activateWindow()
    qtbot.waitExposed(w)
    w.viewer.set_image(three_frames())
    yield w
    w.close()
    qtbot.waitUntil(lambda: running_jobs() == 0, timeout=60_000)


def three_frames() -> XRayImage:
    one = synthetic()
    return dataclasses.replace(one, frames=np.stack([one.frames[0]] * 3))


def dock_button(window: MainWindow) -> QtWidgets.QPushButton:
    """A button in a dock of its own (as the analysis panel's buttons are: focus, but no typing)."""
    button = QtWidgets.QPushButton("Run")
    button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    window.add_dock(button, Qt.DockWidgetArea.RightDockWidgetArea, "Other panel")
    return button


def focus(qtbot, widget: QtWidgets.QWidget) -> None:
    widget.setFocus(Qt.FocusReason.MouseFocusReason)
    qtbot.waitUntil(lambda: QtWidgets.QApplication.focusWidget() is widget, timeout=2000)


@pytest.mark.parametrize("where", ["dock button", "browser tree"])
def test_rotate_key_works_with_another_panel_focused(qtbot, window, where):
    button = dock_button(window) if where == "dock button" else window.browser.tree
    focus(qtbot, button)
    QTest.keyClick(button, Qt.Key.Key_BracketRight)
    assert window.viewer.state.orientation == ROTATE_CW
    QTest.keyClick(button, Qt.Key.Key_R)  # reset
    assert window.viewer.state.orientation == IDENTITY
    QTest.keyClick(button, Qt.Key.Key_I)
    assert window.viewer.state.inverted


def test_typing_in_the_tag_search_types(qtbot, window):
    search = window.tags.search
    focus(qtbot, search)
    window.viewer.state.rotate90()
    QTest.keyClicks(search, "R]i")
    assert search.text().lower() == "r]i"
    assert window.viewer.state.orientation == ROTATE_CW  # "R" did not reset, "]" did not rotate
    assert not window.viewer.state.inverted


def test_arrow_keys_stay_with_the_browser_tree(qtbot, window):
    """Navigation keys (arrows, Space, Home/End, ...) belong to the focused list; the frame is untouched."""
    tree = window.browser.tree
    focus(qtbot, tree)
    before = window.viewer.state.frame
    QTest.keyClick(tree, Qt.Key.Key_Down)
    QTest.keyClick(tree, Qt.Key.Key_End)
    assert window.viewer.state.frame == before
    assert QtWidgets.QApplication.focusWidget() is tree


def test_tool_bar_has_the_reading_tools_with_their_keys(qtbot, window):
    bar = window.findChild(QtWidgets.QToolBar, "viewerToolBar")
    assert bar is not None and bar.isVisible()
    names = [a.objectName() for a in bar.actions() if not a.isSeparator()]
    for wanted in ("viewer_tool_wl", "viewer_tool_zoom", "viewer_tool_pan", "viewer_tool_distance",
                   "viewer_tool_angle", "viewer_rotate_cw", "viewer_flip_h", "viewer_invert", "viewer_reset"):
        assert wanted in names
    rotate = next(a for a in bar.actions() if a.objectName() == "viewer_rotate_cw")
    assert rotate.toolTip() == "Rotate 90° clockwise (])"
    QTest.mouseClick(bar.widgetForAction(rotate), Qt.MouseButton.LeftButton)
    assert window.viewer.state.orientation == ROTATE_CW
    angle = next(a for a in bar.actions() if a.objectName() == "viewer_tool_angle")
    QTest.mouseClick(bar.widgetForAction(angle), Qt.MouseButton.LeftButton)
    assert window.viewer.state.tool == "angle" and angle.isChecked()


def test_tags_and_analysis_docks_can_be_split_and_stay_so(qtbot, window, tmp_path):
    options = window.dockOptions()
    assert options & QtWidgets.QMainWindow.DockOption.AllowNestedDocks
    assert options & QtWidgets.QMainWindow.DockOption.AllowTabbedDocks
    docks = {d.windowTitle(): d for d in window.findChildren(QtWidgets.QDockWidget)}
    tags, analysis = docks["Tags"], docks["Analysis"]
    # what dragging the Analysis tab below the Tags panel does
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, analysis, Qt.Orientation.Vertical)
    analysis.show()
    qtbot.waitUntil(lambda: tags.isVisible() and analysis.isVisible() and not window.tabifiedDockWidgets(tags))
    window.close()  # saves the layout
    again = MainWindow(Settings(tmp_path / "settings.ini"))
    qtbot.addWidget(again)
    again.show()
    try:
        docks = {d.windowTitle(): d for d in again.findChildren(QtWidgets.QDockWidget)}
        qtbot.waitUntil(lambda: docks["Tags"].isVisible() and docks["Analysis"].isVisible())
        assert not again.tabifiedDockWidgets(docks["Tags"])  # still side by side, not tabbed
    finally:
        again.close()
