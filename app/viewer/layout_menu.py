"""View > Layout: the viewport grid in a main window (1x1, 1x2, 2x2, compare with prior, sync).

:func:`install_layout` replaces the window's central viewer by a :class:`ViewerGrid` holding it,
adds the Layout menu, and, while "Compare with prior" is on, hangs each image the window shows
with the chest hanging protocol (its prior from what is open or indexed in the browser).
"""

from __future__ import annotations

from typing import Any

from PySide6 import QtGui, QtWidgets

from app.viewer.hanging import chest_hanging

LAYOUT_ACTIONS = (("1x1", "&Single viewport"), ("1x2", "&1 x 2 viewports"), ("2x2", "&2 x 2 viewports"))
SYNC_ACTIONS = (("window", "Sync &window/level"), ("zoom", "Sync &zoom and pan"), ("frame", "Sync &frame"))


class LayoutController:
    """Keeps the grid and the Layout menu of one window (``window`` is the main window)."""

    def __init__(self, window: Any):
        from app.viewer.layout import ViewerGrid  # pyqtgraph loads with the first viewer

        self.window = window
        window.takeCentralWidget()  # keep the viewer: setCentralWidget deletes the old one
        self.grid = ViewerGrid(window.viewer)
        window.setCentralWidget(self.grid)
        self.grid.primaryDropped.connect(lambda path: window.browser.select_path(path))
        self.menu = QtWidgets.QMenu("&Layout", window)
        self.menu.setObjectName("layoutMenu")
        group = QtGui.QActionGroup(self.menu)
        self.layout_actions: dict[str, QtGui.QAction] = {}
        for name, text in LAYOUT_ACTIONS:
            a = self.menu.addAction(text)
            a.setObjectName(f"layout_{name}")
            a.setCheckable(True)
            a.setChecked(name == "1x1")
            group.addAction(a)
            a.triggered.connect(lambda _checked=False, n=name: self.set_layout(n))
            self.layout_actions[name] = a
        self.menu.addSeparator()
        self.compare_action = self.menu.addAction("&Compare with prior")
        self.compare_action.setObjectName("layout_compare_prior")
        self.compare_action.setCheckable(True)
        self.compare_action.setShortcut(QtGui.QKeySequence("Ctrl+Shift+P"))
        self.compare_action.setStatusTip("Current image left, the most recent prior of the patient right, "
                                         "laterals below")
        self.compare_action.toggled.connect(self.set_compare)
        self.menu.addSeparator()
        self.sync_actions: dict[str, QtGui.QAction] = {}
        for kind, text in SYNC_ACTIONS:
            a = self.menu.addAction(text)
            a.setObjectName(f"layout_sync_{kind}")
            a.setCheckable(True)
            a.toggled.connect(lambda on, k=kind: self.grid.presenter.set_sync(k, on))
            self.sync_actions[kind] = a
        window.loader.loaded.connect(self._on_loaded)
        window.close_all_action.triggered.connect(self._on_close_all)

    def set_layout(self, name: str) -> None:
        self.grid.presenter.set_layout_name(name)
        self.layout_actions[name].setChecked(True)

    def set_compare(self, on: bool) -> None:
        if self.compare_action.isChecked() != on:
            self.compare_action.setChecked(on)  # toggled() calls back once more
            return
        if on:
            self.hang_current()
        else:
            self.grid.presenter.single()
            self.layout_actions["1x1"].setChecked(True)

    def hang_current(self) -> bool:
        """Hang the window's current image with its prior; False when there is no current image."""
        path = self.window.loader.current_path
        index = self.window.browser.index
        entry = next((e for e in index.instances() if e.path == path), None) if path else None
        if entry is None:
            return False
        hanging = chest_hanging(entry, index.instances())
        self.grid.presenter.hang(hanging)
        shape = f"{hanging.rows}x{hanging.cols}"
        if shape in self.layout_actions:
            self.layout_actions[shape].setChecked(True)
        return True

    def _on_loaded(self, _path: str, _image: object) -> None:
        if self.compare_action.isChecked():
            self.hang_current()

    def _on_close_all(self) -> None:
        for viewer in self.grid.viewers()[1:]:
            viewer.clear()
        self.grid.presenter.single()
        self.layout_actions["1x1"].setChecked(True)


def install_layout(window: Any, view_menu: QtWidgets.QMenu | None = None) -> LayoutController:
    """The grid and View > Layout for ``window`` (a main window with viewer, browser and loader)."""
    controller = LayoutController(window)
    if view_menu is not None:
        view_menu.addSeparator()
        view_menu.addMenu(controller.menu)
    return controller
