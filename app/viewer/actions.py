"""Every tool and command of the image view as a QAction with a shortcut (for menus and Help).

The actions are added to the viewer with ``Qt.WidgetWithChildrenShortcut`` context (the keys work
when the image view has the keyboard focus). A main window makes them window-wide with
:func:`app.viewer.shortcuts.install_window_shortcuts` (text fields keep their typing, lists keep the
arrow keys) and may put the same actions in its menus.

Window, presets, inversion, rotation/flip, frames and the tool change the display model
(:class:`app.viewer.state.DisplayState`); zoom, reset, magnifier, cine and measurement commands
go to the view through :class:`ViewCommands` (this module never imports the view).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from PySide6 import QtCore, QtGui, QtWidgets

from app.viewer.state import DisplayState

Key = QtGui.QKeySequence


class ViewCommands(Protocol):
    """The view's own commands (its zoom/pan range, widgets and measurement graphics)."""

    def reset_view(self) -> None: ...
    def zoom_fit(self) -> None: ...
    def zoom_1to1(self) -> None: ...
    def zoom_by(self, factor: float) -> None: ...
    def set_magnifier(self, on: bool) -> None: ...
    def set_cine(self, playing: bool) -> None: ...
    def delete_selected_measurement(self) -> None: ...
    def clear_measurements(self) -> None: ...

TOOL_ACTIONS = (
    ("wl", "Window/level tool", "W"),
    ("pan", "Pan tool", "P"),
    ("zoom", "Zoom tool", "Z"),
    ("distance", "Measure distance", "D"),
    ("angle", "Measure angle", "G"),
    ("rect", "Rectangle ROI", "T"),
    ("ellipse", "Ellipse ROI", "E"),
)


def build_actions(
    state: DisplayState, v: ViewCommands, owner: QtWidgets.QWidget
) -> list[QtGui.QAction]:
    actions: list[QtGui.QAction] = []

    def add(
        name: str, text: str, keys: str | list[str], slot: Callable[[], object], tip: str = ""
    ) -> QtGui.QAction:
        a = QtGui.QAction(text, owner)
        a.setObjectName(f"viewer_{name}")
        a.setShortcuts([Key(k) for k in ([keys] if isinstance(keys, str) else keys)])
        a.setShortcutContext(QtCore.Qt.ShortcutContext.WidgetWithChildrenShortcut)
        a.setToolTip(f"{text} ({a.shortcut().toString(Key.SequenceFormat.NativeText)})")
        if tip:
            a.setStatusTip(tip)
        a.triggered.connect(lambda _checked=False: slot())
        actions.append(a)
        return a

    group = QtGui.QActionGroup(owner)
    group.setExclusive(True)
    for name, text, key in TOOL_ACTIONS:
        a = add(f"tool_{name}", text, key, lambda n=name: state.set_tool(n))
        a.setCheckable(True)
        a.setChecked(name == "wl")
        a.setData(name)
        group.addAction(a)

    for i in range(9):
        add(
            f"preset_{i + 1}",
            f"Window preset {i + 1} from the file",
            str(i + 1),
            lambda i=i: state.apply_preset(i),
        )
    add("preset_lung", "Lung window", "L", lambda: state.apply_preset("Lung"))
    add("preset_mediastinum", "Mediastinum window", "M", lambda: state.apply_preset("Mediastinum"))
    add("preset_bone", "Bone window", "B", lambda: state.apply_preset("Bone"))
    add("auto_window", "Automatic window", "A", state.auto_window)
    add("invert", "Invert grey levels", "I", state.toggle_invert)
    add(
        "reset",
        "Reset view",
        ["R", "Esc"],
        v.reset_view,
        "Window, zoom, rotation and inversion back to the defaults",
    )

    add("zoom_fit", "Zoom to fit", "F", v.zoom_fit)
    add("zoom_1to1", "Zoom 1:1 (one screen pixel per image pixel)", "Ctrl+0", v.zoom_1to1)
    add("zoom_in", "Zoom in", ["+", "="], lambda: v.zoom_by(1.25))
    add("zoom_out", "Zoom out", "-", lambda: v.zoom_by(0.8))
    add("rotate_cw", "Rotate 90° clockwise", "]", lambda: state.rotate90(True))
    add("rotate_ccw", "Rotate 90° counter-clockwise", "[", lambda: state.rotate90(False))
    add("flip_h", "Flip horizontally", "H", state.flip_horizontal)
    add("flip_v", "Flip vertically", "V", state.flip_vertical)
    mag = add("magnifier", "Magnifier", "X", lambda: None)
    mag.setCheckable(True)
    mag.toggled.connect(v.set_magnifier)

    add("next_frame", "Next frame", ["PgDown", "Right", "Down"], lambda: state.step_frame(1))
    add("previous_frame", "Previous frame", ["PgUp", "Left", "Up"], lambda: state.step_frame(-1))
    add("first_frame", "First frame", "Home", lambda: state.set_frame(0))
    add("last_frame", "Last frame", "End", lambda: state.set_frame(state.n_frames() - 1))
    cine = add("cine", "Play/stop cine", "Space", lambda: None)
    cine.setCheckable(True)
    cine.toggled.connect(lambda on: v.set_cine(on))

    add(
        "delete_measurement",
        "Delete selected measurement",
        ["Del", "Backspace"],
        v.delete_selected_measurement,
    )
    add("clear_measurements", "Delete all measurements on this image", "Shift+Del", v.clear_measurements)
    return actions
