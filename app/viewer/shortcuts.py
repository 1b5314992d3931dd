"""The viewer's keys window-wide (issue 10 item 4): `]`, `R`, `L`, ... work wherever the focus is in
the window, except that

- a text field (line edit, text edit, spin box, editable combo box) keeps the keys it types, and
- a focused list, tree or button outside the viewer keeps the navigation keys (arrows, Page Up/Down,
  Home/End, Space, Delete, Backspace, Esc, Return): there they move the selection, not the frame.

:func:`install_window_shortcuts` puts the viewer's actions on the window with ``Qt.WindowShortcut``
context and watches ``ShortcutOverride`` (the event Qt sends the focused widget before it looks up a
shortcut; accepting it gives the key to the widget).
"""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

K = QtCore.Qt.Key
NAVIGATION_KEYS = frozenset({
    K.Key_Left, K.Key_Right, K.Key_Up, K.Key_Down, K.Key_PageUp, K.Key_PageDown, K.Key_Home,
    K.Key_End, K.Key_Space, K.Key_Delete, K.Key_Backspace, K.Key_Escape, K.Key_Return, K.Key_Enter,
})
TEXT_INPUTS = (QtWidgets.QLineEdit, QtWidgets.QTextEdit, QtWidgets.QPlainTextEdit, QtWidgets.QAbstractSpinBox)
_COMMAND = QtCore.Qt.KeyboardModifier.ControlModifier | QtCore.Qt.KeyboardModifier.AltModifier | \
    QtCore.Qt.KeyboardModifier.MetaModifier


def is_text_input(widget: QtWidgets.QWidget | None) -> bool:
    if isinstance(widget, QtWidgets.QComboBox):
        return widget.isEditable()
    return isinstance(widget, TEXT_INPUTS)


def keeps_key(focus: QtWidgets.QWidget, viewer: QtWidgets.QWidget, key: int, modifiers) -> bool:
    """Whether the focused widget (not the viewer's shortcuts) gets this key press."""
    if focus is viewer or viewer.isAncestorOf(focus):
        return False
    if modifiers & _COMMAND:
        return False  # Ctrl+0, Ctrl+R, ... are commands everywhere
    return is_text_input(focus) or key in NAVIGATION_KEYS


class WindowShortcuts(QtCore.QObject):
    """Keeps the rule above for one window and its viewer (see the module docstring)."""

    def __init__(self, window: QtWidgets.QWidget, viewer: QtWidgets.QWidget, actions: list[QtGui.QAction]):
        super().__init__(window)
        self._window, self._viewer = window, viewer
        for action in actions:
            action.setShortcutContext(QtCore.Qt.ShortcutContext.WindowShortcut)
        window.addActions(actions)
        app = QtWidgets.QApplication.instance()
        if app is not None:
            app.installEventFilter(self)

    def eventFilter(self, obj: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() == QtCore.QEvent.Type.ShortcutOverride and isinstance(obj, QtWidgets.QWidget):
            try:
                mine = obj.window() is self._window
            except RuntimeError:  # the window is being deleted
                return False
            if mine and keeps_key(obj, self._viewer, event.key(), event.modifiers()):  # type: ignore[attr-defined]
                event.accept()
        return False


def install_window_shortcuts(window: QtWidgets.QWidget, viewer: QtWidgets.QWidget) -> WindowShortcuts:
    """Make ``viewer``'s actions (``viewer.actions()``) window-wide on ``window``; see the module docstring."""
    actions = [a for a in viewer.actions() if not a.isSeparator()]
    return WindowShortcuts(window, viewer, actions)
