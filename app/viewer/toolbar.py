"""A compact tool bar for the image view: the mouse tools, rotate/flip, invert, fit and reset.

It shows the viewer's own actions (the same ones as the View menu and the keys), with short
labels; each tooltip names the action and its key, e.g. "Rotate 90° clockwise (])".
"""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

# (action object name, short label); None: a separator
TOOL_BAR = (
    ("viewer_tool_wl", "W/L"),
    ("viewer_tool_pan", "Pan"),
    ("viewer_tool_zoom", "Zoom"),
    None,
    ("viewer_tool_distance", "Distance"),
    ("viewer_tool_angle", "Angle"),
    ("viewer_tool_rect", "Rect"),
    ("viewer_tool_ellipse", "Ellipse"),
    None,
    ("viewer_rotate_ccw", "⟲"),
    ("viewer_rotate_cw", "⟳"),
    ("viewer_flip_h", "⇆"),
    ("viewer_flip_v", "⇅"),
    ("viewer_invert", "Invert"),
    None,
    ("viewer_zoom_fit", "Fit"),
    ("viewer_reset", "Reset"),
)


def build_tool_bar(actions: list[QtGui.QAction], parent: QtWidgets.QWidget | None = None) -> QtWidgets.QToolBar:
    by_name = {a.objectName(): a for a in actions}
    bar = QtWidgets.QToolBar("Viewer tools", parent)
    bar.setObjectName("viewerToolBar")
    bar.setToolButtonStyle(QtCore.Qt.ToolButtonStyle.ToolButtonTextOnly)
    bar.setIconSize(QtCore.QSize(16, 16))
    for entry in TOOL_BAR:
        if entry is None:
            bar.addSeparator()
            continue
        name, label = entry
        action = by_name.get(name)
        if action is None:
            continue
        action.setIconText(label)
        bar.addAction(action)
        button = bar.widgetForAction(action)
        if button is not None:
            button.setObjectName(f"toolbar_{name.removeprefix('viewer_')}")
            button.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)  # the keys stay with the viewer
    return bar
