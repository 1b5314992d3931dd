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


class ActionTarget:
    """What the actions act on: the viewer that built them, unless :meth:`route` points them at
    another viewport (a layout's active one), looked up each time an action fires."""

    def __init__(self, state: DisplayState, view: ViewCommands) -> None:
        self._default = (state, view)
        self._get: Callable[[], tuple[DisplayState, ViewCommands]] | None = None

    def route(self, get: Callable[[], tuple[DisplayState, ViewCommands]] | None) -> None:
        self._get = get

    def current(self) -> tuple[DisplayState, ViewCommands]:
        return self._get() if self._get is not None else self._default


def build_actions(
    state: DisplayState, v: ViewCommands, owner: QtWidgets.QWidget, target: ActionTarget | None = None
) -> list[QtGui.QAction]:
    """The actions; each acts on ``target.current()`` when it fires (``state``/``v`` by default)."""
    target = target or ActionTarget(state, v)
    actions: list[QtGui.QAction] = []

    def s() -> DisplayState:
        return target.current()[0]

    def view() -> ViewCommands:
        return target.current()[1]

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
        a = add(f"tool_{name}", text, key, lambda n=name: s().set_tool(n))
        a.setCheckable(True)
        a.setChecked(name == "wl")
        a.setData(name)
        group.addAction(a)

    for i in range(9):
        add(
            f"preset_{i + 1}",
            f"Window preset {i + 1} from the file",
            str(i + 1),
            lambda i=i: s().apply_preset(i),
        )
    add("preset_lung", "Lung window", "L", lambda: s().apply_preset("Lung"))
    add("preset_mediastinum", "Mediastinum window", "M", lambda: s().apply_preset("Mediastinum"))
    add("preset_bone", "Bone window", "B", lambda: s().apply_preset("Bone"))
    add("auto_window", "Automatic window", "A", lambda: s().auto_window())
    add("invert", "Invert grey levels", "I", lambda: s().toggle_invert())
    add(
        "reset",
        "Reset view",
        ["R", "Esc"],
        lambda: view().reset_view(),
        "Window, zoom, rotation and inversion back to the defaults",
    )

    add("zoom_fit", "Zoom to fit", "F", lambda: view().zoom_fit())
    add("zoom_1to1", "Zoom 1:1 (one screen pixel per image pixel)", "Ctrl+0", lambda: view().zoom_1to1())
    add("zoom_in", "Zoom in", ["+", "="], lambda: view().zoom_by(1.25))
    add("zoom_out", "Zoom out", "-", lambda: view().zoom_by(0.8))
    add("rotate_cw", "Rotate 90° clockwise", "]", lambda: s().rotate90(True))
    add("rotate_ccw", "Rotate 90° counter-clockwise", "[", lambda: s().rotate90(False))
    add("flip_h", "Flip horizontally", "H", lambda: s().flip_horizontal())
    add("flip_v", "Flip vertically", "V", lambda: s().flip_vertical())
    mag = add("magnifier", "Magnifier", "X", lambda: None)
    mag.setCheckable(True)
    mag.toggled.connect(lambda on: view().set_magnifier(on))

    add("next_frame", "Next frame", ["PgDown", "Right", "Down"], lambda: s().step_frame(1))
    add("previous_frame", "Previous frame", ["PgUp", "Left", "Up"], lambda: s().step_frame(-1))
    add("first_frame", "First frame", "Home", lambda: s().set_frame(0))
    add("last_frame", "Last frame", "End", lambda: s().set_frame(s().n_frames() - 1))
    cine = add("cine", "Play/stop cine", "Space", lambda: None)
    cine.setCheckable(True)
    cine.toggled.connect(lambda on: view().set_cine(on))

    add(
        "delete_measurement",
        "Delete selected measurement",
        ["Del", "Backspace"],
        lambda: view().delete_selected_measurement(),
    )
    add("clear_measurements", "Delete all measurements on this image", "Shift+Del", lambda: view().clear_measurements())
    return actions
