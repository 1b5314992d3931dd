"""Plugging the PACS into the main window: the "PACS" menu, the Query/Retrieve dock, the node
dialog, and the receiver whose incoming instances open in the browser.

Retrieved and received studies open through ``main_window.open_paths`` (the same indexing path a
dropped folder takes). Nothing of ``ml.pacs`` beyond the settings file is imported before the user
opens the dock or the dialog, unless the receiver is switched on (it starts once the event loop
runs). Not for diagnostic use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget, QMenu


class PacsController(QObject):
    instanceArrived = Signal(str)  # emitted on the receiver's network thread, delivered queued

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self._session: Any = None
        self.dock: QDockWidget | None = None
        self.query: Any = None
        self.nodes_dialog: Any = None
        self._incoming: list[str] = []
        self._flush = QTimer(self, singleShot=True, interval=800)  # a pushed study opens as one batch
        self._flush.timeout.connect(self._open_incoming)
        self.instanceArrived.connect(self._queue_incoming, Qt.ConnectionType.QueuedConnection)

    @property
    def session(self) -> Any:
        if self._session is None:
            from app.pacs.session import PacsSession

            self._session = PacsSession(on_instance=lambda path: self.instanceArrived.emit(str(path)))
            if self._session.receiver_settings.enabled:
                self._session.apply_receiver()
                if self._session.receiver_error:
                    self.window.statusBar().showMessage(self._session.receiver_status(), 15000)
        return self._session

    def start_receiver_if_enabled(self) -> None:
        from ml.errors import CxrError
        from ml.pacs.nodes import load_receiver

        try:
            enabled = load_receiver().enabled
        except CxrError:
            enabled = False
        if enabled:
            _ = self.session  # starts it

    # -- the dock and the dialog -------------------------------------------------------------------
    def open_folder(self, folder: Path) -> None:
        self.window.open_paths([folder])

    def show_query(self) -> Any:
        if self.dock is None:
            from app.pacs.query_dock import QueryDock

            self.query = QueryDock(self.session, self.open_folder, self.show_nodes)
            self.dock = self.window.add_dock(self.query, Qt.DockWidgetArea.BottomDockWidgetArea, "Query/Retrieve")
            self.dock.setObjectName("dock_pacs_query")
        self.dock.show()
        self.dock.raise_()
        self.query.inputs["patient_id"].setFocus()
        return self.query

    def show_nodes(self) -> Any:
        if self.nodes_dialog is None:
            from app.pacs.nodes_dialog import NodesDialog

            self.nodes_dialog = NodesDialog(self.session, self.window)
        self.nodes_dialog.open()
        return self.nodes_dialog

    # -- received instances ------------------------------------------------------------------------
    def _queue_incoming(self, path: str) -> None:
        self._incoming.append(path)
        self._flush.start()

    def _open_incoming(self) -> None:
        paths, self._incoming = self._incoming, []
        if paths:
            self.window.open_paths(paths)
            studies = len({Path(p).parent for p in paths})
            self.window.statusBar().showMessage(
                f"Received {len(paths)} instance(s) of {studies} stud{'y' if studies == 1 else 'ies'}", 8000)

    def shutdown(self) -> None:
        if self.query is not None:
            self.query.shutdown()
        if self._session is not None:
            self._session.shutdown()


class _CloseWatcher(QObject):
    def __init__(self, controller: PacsController) -> None:
        super().__init__(controller)
        self.controller = controller

    def eventFilter(self, obj: QObject, event: Any) -> bool:  # noqa: N802 - Qt override
        from PySide6.QtCore import QEvent

        if event.type() == QEvent.Type.Close:
            self.controller.shutdown()
        return False


def install(window: Any) -> PacsController:
    """The "PACS" menu (before Help) with "Query/Retrieve…" and "Nodes…"; idempotent."""
    existing = getattr(window, "pacs", None)
    if isinstance(existing, PacsController):
        return existing
    controller = PacsController(window)
    menu = QMenu("&PACS", window)
    menu.setObjectName("pacsMenu")
    query = QAction("&Query/Retrieve…", window, objectName="pacs_query")
    query.setStatusTip("Search a PACS node and retrieve studies into the browser")
    query.triggered.connect(lambda _checked=False: controller.show_query())
    nodes = QAction("&Nodes…", window, objectName="pacs_nodes")
    nodes.setStatusTip("PACS nodes (DICOM and DICOMweb) and this computer's C-STORE receiver")
    nodes.triggered.connect(lambda _checked=False: controller.show_nodes())
    menu.addActions([query, nodes])
    bar = window.menuBar()
    help_menu = next((a for a in bar.actions() if a.text().replace("&", "") == "Help"), None)
    if help_menu is not None:  # keep Help last
        bar.insertMenu(help_menu, menu)
    else:
        bar.addMenu(menu)
    window.installEventFilter(_CloseWatcher(controller))
    window.pacs, window.pacs_menu = controller, menu
    window.pacs_query_action, window.pacs_nodes_action = query, nodes
    QTimer.singleShot(0, controller.start_receiver_if_enabled)
    return controller
