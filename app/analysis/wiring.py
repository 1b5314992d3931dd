"""Plugging the analysis panel into the main window: the dock, the Analysis menu, the status bar.

:func:`install` is the one call the main window makes (through ``app.analysis.install``). It builds
what the panel needs from the window (what is open, settings, notifications) and hands it over, so
the panel never reaches into the window. The installed models are listed once the event loop runs
(that job is where torch first loads, so the window appears without waiting for it).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog

from app.analysis.panel import AnalysisPanel, ViewerImages


class BrowserImages(ViewerImages):
    """What is open in the main window: the viewer's image, the browser's series and studies."""

    def __init__(self, viewer: Any, browser: Any) -> None:
        super().__init__(viewer)
        self.browser = browser

    def series_paths(self) -> list[str]:
        entry = self.browser.current_entry()
        located = self.browser.index.locate(entry) if entry is not None else None
        if located is None:
            return super().series_paths()
        return [i.path for i in located[2].instances if i.is_image]

    def study_paths(self) -> list[str]:
        return [i.path for i in self.browser.index.instances() if i.is_image]

    def study_count(self) -> int:
        return len(self.browser.index)

    def show_path(self, path: str) -> bool:
        return bool(self.browser.select_path(path))


class QSettingsStore:
    def __init__(self, qsettings: Any) -> None:
        self.qsettings = qsettings

    def value(self, key: str, default: str) -> str:
        return str(self.qsettings.value(key, default))

    def set_value(self, key: str, value: str) -> None:
        self.qsettings.setValue(key, value)


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


def make_panel(main_window: Any) -> AnalysisPanel:
    """The panel, given what it needs from ``main_window`` (viewer, browser, settings, status bar)."""
    prefs = main_window.prefs
    return AnalysisPanel(
        main_window.viewer,
        BrowserImages(main_window.viewer, main_window.browser),
        settings=QSettingsStore(main_window.settings.qsettings),
        notify=main_window.notify,
        status_message=main_window.statusBar().showMessage,
        last_directory=lambda: prefs.last_directory,
    )


def install(main_window: Any) -> AnalysisPanel:
    """Add the analysis dock, the Analysis menu entries and the status bar device label (once)."""
    existing = getattr(main_window, "analysis_panel", None)
    if existing is not None:
        return existing
    panel = make_panel(main_window)
    dock = main_window.add_dock(panel, Qt.DockWidgetArea.RightDockWidgetArea, "Analysis", main_window.tags_dock)
    main_window.analysis_dock = dock
    main_window.analysis_panel = panel
    main_window.statusBar().addPermanentWidget(panel.device_label)

    def classify_folder() -> None:
        folder = QFileDialog.getExistingDirectory(main_window, "Classify every image in a folder")
        if folder:
            panel.run_folder([folder])

    w = main_window
    actions = [
        _action(w, "Run on current &image", panel.run_current, "Ctrl+R", "analysis_run_image"),
        _action(w, "Run on current &series", panel.run_series, "Ctrl+Shift+R", "analysis_run_series"),
        _action(w, "Run on every open &study", panel.run_all, "Ctrl+Alt+R", "analysis_run_all"),
        _action(w, "Classify a &folder…", classify_folder, None, "analysis_run_folder"),
        None,
        _action(w, "&Heatmap for current image", panel.explain, "Ctrl+H", "analysis_explain"),
        _action(w, "Show/hide &heatmap", panel.controls.show_box.toggle, "Shift+H", "analysis_toggle_heatmap"),
        _action(w, "&Cancel analysis", panel.cancel, None, "analysis_cancel"),
        None,
        _action(w, "Export report as &PDF…", lambda: panel.export_dialog("pdf"), "Ctrl+P", "analysis_pdf"),
        _action(w, "Export report as P&NG…", lambda: panel.export_dialog("png"), None, "analysis_png"),
        _action(w, "Export results as &CSV…", lambda: panel.export_dialog("csv"), None, "analysis_csv"),
        None,
        _action(w, "Model &library…", panel.open_library, "Ctrl+L", "analysis_library"),
    ]
    for action in actions:
        if action is None:
            main_window.analysis_menu.addSeparator()
        else:
            main_window.analysis_menu.addAction(action)
    panel.menu_actions = [a for a in actions if a is not None]
    main_window.installEventFilter(_CloseWatcher(panel))
    QTimer.singleShot(0, panel.refresh_models)
    return panel


__all__ = ["BrowserImages", "QSettingsStore", "install", "make_panel"]
