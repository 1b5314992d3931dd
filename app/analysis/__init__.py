"""The AI analysis part of the window: panel (dock), Analysis menu, model library, reports.

``install(main_window)`` is the one call the main window makes. It adds the dock, fills the
"Analysis" menu, puts the device in use on the status bar, and lists the installed models once the
event loop runs (that job is where torch first loads, so the window appears without waiting for it).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QLabel

from app.analysis.panel import AnalysisPanel


class _CloseWatcher(QObject):
    def __init__(self, panel: AnalysisPanel) -> None:
        super().__init__(panel)
        self.panel = panel

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.Close:
            self.panel.shutdown()
        return False


def _action(window: Any, text: str, slot: Any, shortcut: str | None = None, name: str = "") -> QAction:
    action = QAction(text, window)
    if shortcut:
        action.setShortcut(QKeySequence(shortcut))
    if name:
        action.setObjectName(name)
    action.triggered.connect(lambda _checked=False: slot())
    return action


def _classify_folder(window: Any, panel: AnalysisPanel) -> None:
    folder = QFileDialog.getExistingDirectory(window, "Classify every image in a folder")
    if folder:
        panel.run_folder([folder])


def install(main_window: Any) -> AnalysisPanel:
    """Add the analysis dock, the Analysis menu entries and the status bar device label (once)."""
    existing = getattr(main_window, "analysis_panel", None)
    if existing is not None:
        return existing
    panel = AnalysisPanel(main_window)
    dock = main_window.add_dock(panel, Qt.DockWidgetArea.RightDockWidgetArea, "Analysis")
    tags_dock = getattr(main_window, "tags_dock", None)
    if tags_dock is not None:
        main_window.tabifyDockWidget(tags_dock, dock)
    dock.raise_()
    main_window.analysis_dock = dock
    main_window.analysis_panel = panel

    label = QLabel("")
    label.setObjectName("analysisDevice")
    label.setToolTip("The model in use and the device it runs on")
    label.setVisible(False)
    main_window.statusBar().addPermanentWidget(label)
    panel.device_label = label

    menu = main_window.analysis_menu
    actions = [
        _action(main_window, "Run on current &image", panel.run_current, "Ctrl+R", "analysis_run_image"),
        _action(
            main_window, "Run on current &series", panel.run_series, "Ctrl+Shift+R", "analysis_run_series"
        ),
        _action(main_window, "Run on every open &study", panel.run_all, "Ctrl+Alt+R", "analysis_run_all"),
        _action(
            main_window,
            "Classify a &folder…",
            lambda: _classify_folder(main_window, panel),
            None,
            "analysis_run_folder",
        ),
        None,
        _action(main_window, "&Heatmap for current image", panel.explain, "Ctrl+H", "analysis_explain"),
        _action(
            main_window,
            "Show/hide &heatmap",
            panel.controls.show_box.toggle,
            "Shift+H",
            "analysis_toggle_heatmap",
        ),
        _action(main_window, "&Cancel analysis", panel.cancel, None, "analysis_cancel"),
        None,
        _action(
            main_window,
            "Export report as &PDF…",
            lambda: panel._export_dialog("pdf"),
            "Ctrl+P",
            "analysis_pdf",
        ),
        _action(
            main_window, "Export report as P&NG…", lambda: panel._export_dialog("png"), None, "analysis_png"
        ),
        _action(
            main_window, "Export results as &CSV…", lambda: panel._export_dialog("csv"), None, "analysis_csv"
        ),
        None,
        _action(main_window, "Model &library…", panel.open_library, "Ctrl+L", "analysis_library"),
    ]
    for action in actions:
        if action is None:
            menu.addSeparator()
        else:
            menu.addAction(action)
    panel.menu_actions = [a for a in actions if a is not None]
    main_window.installEventFilter(_CloseWatcher(panel))
    QTimer.singleShot(0, panel.refresh_models)
    return panel


__all__ = ["AnalysisPanel", "install"]
