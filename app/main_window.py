"""The main window: menus, docks and the wiring between browser, viewer and tag panel.

Work happens elsewhere: indexing (app.browser.indexer), decoding (app.browser.loader),
thumbnails (app.browser.thumbnails), display (app.viewer), tags (app.tags). The AI analysis
panel plugs in through :meth:`MainWindow.add_dock` and the "Analysis" menu.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QWidget,
)

from app.browser import BrowserPanel, ImageLoader, IndexController, ThumbnailLoader
from app.dialogs import NOT_FOR_DIAGNOSTIC_USE, ShortcutsDialog, show_about, show_message
from app.drop import FileDropMixin
from app.menus import (
    group_viewer_actions,
    make_action,
)
from app.opening import OpeningMixin
from app.progress import ProgressPanel, count_text
from app.settings import Preferences, Settings
from app.tags import TagPanel
from app.viewer.layout_menu import install_layout
from app.viewer.shortcuts import install_window_shortcuts
from app.viewer.toolbar import build_tool_bar
from ml.errors import CxrError
from ml.imaging.index import InstanceEntry


class MainWindow(OpeningMixin, FileDropMixin, QMainWindow):
    def __init__(
        self, settings: Settings | None = None, viewer: QWidget | None = None, defer_panels: bool = False
    ):
        """``defer_panels``: leave the analysis, training, DICOM-object and PACS parts to
        :meth:`install_panels`, which the app's launch calls once the window is on screen (they
        cost about a third of the start-up); otherwise (tests, embedding) they are built here."""
        super().__init__()
        self.setObjectName("mainWindow")
        self.setWindowTitle("CXR Studio")
        self.setAcceptDrops(True)
        self.settings = settings or Settings()
        self.prefs: Preferences = self.settings.preferences()
        if viewer is None:
            from app.viewer import ImageViewer

            viewer = ImageViewer()
        self.viewer = viewer
        self.setCentralWidget(self.viewer)
        option = QMainWindow.DockOption  # docks side by side or tabbed (Tags and Analysis at once); saved
        self.setDockOptions(option.AnimatedDocks | option.AllowNestedDocks | option.AllowTabbedDocks)
        self.indexer = IndexController(parent=self)
        self.loader = ImageLoader(parent=self)
        self.thumbnails = ThumbnailLoader(size=self.prefs.thumbnail_size, parent=self)
        self.browser = BrowserPanel(self.thumbnails)
        self.tags = TagPanel()
        self.browser_dock = self.add_dock(self.browser, Qt.DockWidgetArea.LeftDockWidgetArea, "Studies")
        self.tags_dock = self.add_dock(self.tags, Qt.DockWidgetArea.RightDockWidgetArea, "Tags")
        self.resizeDocks([self.browser_dock, self.tags_dock], [290, 440], Qt.Orientation.Horizontal)
        self.last_notice: QMessageBox | None = None
        self._auto_show: set[int] = set()  # index requests whose first image is still to be shown
        self._requests: dict[int, list[str]] = {}  # index request id -> the paths asked for
        self._build_status_bar()
        self._build_menus()
        self._connect()
        # set by install_panels (each installer's own parts; None until then)
        self.analysis_panel: Any = None
        self.analysis_dock: QDockWidget | None = None
        self.training_action: QAction | None = None
        self.training_menu: QMenu | None = None
        self.site_evaluation_action: QAction | None = None
        self.dicom_objects: Any = None
        self.pacs: Any = None
        self.pacs_menu: QMenu | None = None
        self.pacs_query_action: QAction | None = None
        self.pacs_nodes_action: QAction | None = None
        if not defer_panels:
            self.install_panels()
        self.resize(1500, 950)
        self.settings.restore_window(self)

    def install_panels(self) -> None:
        """The analysis dock and menu, the Training menu, the DICOM-object actions and the PACS menu
        (idempotent). A dock added after :meth:`Settings.restore_window` takes its saved place."""
        from app.analysis import install as install_analysis
        from app.pacs import install as install_pacs
        from app.training import install as install_training
        from app.viewer.dicom_menu import install as install_dicom_objects

        install_analysis(self)
        install_training(self)
        install_dicom_objects(self)  # File > Save measurements as DICOM SR / Secondary Capture; SR/PM re-open
        install_pacs(self)  # PACS > Query/Retrieve…, Nodes…; the optional C-STORE receiver

    # -- layout ------------------------------------------------------------------------------------
    def add_dock(
        self, widget: QWidget, area: Qt.DockWidgetArea, title: str, tabify_with: QDockWidget | None = None
    ) -> QDockWidget:
        """Dock ``widget`` (e.g. the analysis panel; by default in ``area``, as a tab beside
        ``tabify_with`` if given) and list it under View > Panels. A dock made after the saved
        layout was restored (the panels after the first paint, PACS on first use) goes where the
        user left it."""
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower().replace(' ', '_')}")
        dock.setWidget(widget)
        feature = QDockWidget.DockWidgetFeature
        dock.setFeatures(feature.DockWidgetMovable | feature.DockWidgetClosable | feature.DockWidgetFloatable)
        if not self.restoreDockWidget(dock):  # the saved layout has no place for it (yet)
            self.addDockWidget(area, dock)
            if tabify_with is not None:
                self.tabifyDockWidget(tabify_with, dock)
                # a new tab shows on top; on a window already on screen the tab bar exists only
                # once the layout has run
                if self.isVisible():
                    QTimer.singleShot(0, dock.raise_)
                else:
                    dock.raise_()
        if hasattr(self, "panels_menu"):
            self.panels_menu.addAction(dock.toggleViewAction())
        return dock

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.cursor_label = QLabel("")
        self.cursor_label.setObjectName("cursorInfo")
        # the indexing queue is several jobs in a row: driven by hand (set_busy / set_progress)
        self.progress = ProgressPanel(formatter=count_text, cancel_tooltip="Stop opening files",
                                      object_name="indexProgress")
        self.progress.bar.setMaximumWidth(220)
        self.progress.cancelRequested.connect(self.indexer.cancel)
        self.disclaimer = QLabel(NOT_FOR_DIAGNOSTIC_USE)
        self.disclaimer.setObjectName("disclaimer")
        bar.addWidget(self.cursor_label, 1)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.disclaimer)
        self._set_busy(False)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.open_files_action = make_action(self, "&Open files…", self.open_files_dialog, QKeySequence.StandardKey.Open)
        self.open_folder_action = make_action(self, "Open &folder…", self.open_folder_dialog, "Ctrl+Shift+O")
        self.open_zip_action = make_action(self, "Open &ZIP…", self.open_zip_dialog, "Ctrl+Alt+O")
        self.recent_menu = QMenu("Open &recent", self)
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self.export_action = make_action(self, "&Export view as PNG (with overlays)…",
                                         lambda: self.export_png_dialog(True), "Ctrl+E")
        self.export_plain_action = make_action(self, "Export view as PNG (&without overlays)…",
                                               lambda: self.export_png_dialog(False), "Ctrl+Shift+E")
        self.close_all_action = make_action(self, "&Close all studies", self.close_all, QKeySequence.StandardKey.Close)
        self.quit_action = make_action(self, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.file_actions = [self.open_files_action, self.open_folder_action, self.open_zip_action]
        file_menu.addActions(self.file_actions)
        file_menu.addMenu(self.recent_menu)
        file_menu.addSeparator()
        file_menu.addActions([self.export_action, self.export_plain_action])
        file_menu.addSeparator()
        file_menu.addActions([self.close_all_action, self.quit_action])
        self.file_actions += [self.export_action, self.export_plain_action, self.close_all_action, self.quit_action]

        view_menu = bar.addMenu("&View")
        self.viewer_actions = [a for a in self.viewer.actions() if not a.isSeparator() and a.text()]
        self.window_shortcuts = install_window_shortcuts(self, self.viewer)  # window-wide viewer keys
        self.viewer_tool_bar = build_tool_bar(self.viewer_actions, self)  # W/L, zoom, measure, rotate, ...
        self.addToolBar(self.viewer_tool_bar)
        self.viewer_groups = group_viewer_actions(self.viewer_actions)
        for title, actions in self.viewer_groups:
            view_menu.addMenu(title).addActions(actions)
        self.layout_controller = install_layout(self, view_menu)  # View > Layout: viewports, compare with prior, sync
        view_menu.addSeparator()
        self.panels_menu = view_menu.addMenu("&Panels")
        for dock in (self.browser_dock, self.tags_dock):
            self.panels_menu.addAction(dock.toggleViewAction())
        self.full_screen_action = make_action(self, "&Full screen", self._toggle_full_screen, QKeySequence.StandardKey.FullScreen)
        self.full_screen_action.setCheckable(True)
        self.focus_search_action = make_action(self, "Search &tags", self._focus_tag_search, QKeySequence.StandardKey.Find)
        view_menu.addActions([self.full_screen_action, self.focus_search_action])
        self.window_actions = [self.full_screen_action, self.focus_search_action]

        self.analysis_menu = bar.addMenu("&Analysis")  # filled by the AI analysis panel (issue 3)
        self.analysis_menu.setObjectName("analysisMenu")

        help_menu = bar.addMenu("&Help")
        self.shortcuts_action = make_action(self, "&Keyboard shortcuts", self.show_shortcuts, "F1")
        self.about_action = make_action(self, "&About CXR Studio", lambda: show_about(self))
        help_menu.addActions([self.shortcuts_action, self.about_action])
        self._update_enabled()

    def _connect(self) -> None:
        self.indexer.batch.connect(self._on_batch)
        self.indexer.progress.connect(self.progress.set_progress)
        self.indexer.finished.connect(self._on_indexed)
        self.indexer.failed.connect(self._on_index_failed)
        self.indexer.cancelled.connect(self._on_index_cancelled)
        self.indexer.busyChanged.connect(self._set_busy)
        self.browser.instanceSelected.connect(self.show_instance)
        self.browser.tree.itemActivated.connect(lambda *_: self.viewer.setFocus())
        self.loader.loaded.connect(self._on_loaded)
        self.loader.failed.connect(self._on_load_failed)
        self.loader.headerLoaded.connect(self._on_header)
        for name, slot in (("cursorInfo", self.cursor_label.setText), ("imageChanged", self._update_enabled)):
            signal = getattr(self.viewer, name, None)
            if signal is not None:
                signal.connect(slot)

    def close_all(self) -> None:
        """Forget every open study: browser, image, tags and the measurements kept per image."""
        self.indexer.cancel()
        self._auto_show.clear()
        self.browser.clear()
        self.loader.forget()
        self.viewer.clear()
        forget = getattr(self.viewer, "forget_measurements", None)
        if callable(forget):
            forget()
        self.tags.clear()
        self.setWindowTitle("CXR Studio")
        self._update_enabled()

    # -- showing an instance -----------------------------------------------------------------------
    def show_instance(self, entry: InstanceEntry) -> None:
        if entry.path == self.loader.current_path:
            return
        name = Path(entry.source.replace("\\", "/")).name
        if not entry.is_image:
            why = f"{name} is a {entry.meta.sop_class_name or 'non-image DICOM object'}: it has no image to show."
            self.loader.load_header_only(entry.path)
            self.viewer.clear()
            self.tags.clear(why)
            self.setWindowTitle(f"{name} — CXR Studio")
            self.statusBar().showMessage(why, 15000)
            return
        self.statusBar().showMessage(f"Opening {name}…")
        self.loader.load(entry.path)

    def _on_loaded(self, path: str, image) -> None:
        self.viewer.set_image(image, path)
        self.tags.set_dataset(image.dataset, Path(path).name)
        self.setWindowTitle(f"{Path(path).name} — CXR Studio")
        self.statusBar().clearMessage()
        self._update_enabled()

    def _on_header(self, path: str, dataset) -> None:
        self.tags.set_dataset(dataset, Path(path).name, note=self.tags.summary.text())

    def _on_load_failed(self, path: str, message: str) -> None:
        self.tags.clear(f"{Path(path).name}: could not be decoded")
        self.notify("Could not show the image", message)

    def notify(self, headline: str, details: str = "") -> None:
        """A status bar line and a non-blocking message box: the headline, then the details."""
        first = details.splitlines()[0].lstrip("• ") if details else ""
        self.statusBar().showMessage(f"{headline}: {first}" if first else headline, 15000)
        if self.last_notice is not None:
            try:
                self.last_notice.close()
            except RuntimeError:  # already deleted by Qt
                pass
        self.last_notice = show_message(self, "CXR Studio", headline, details)

    # -- export, help, misc ------------------------------------------------------------------------
    def _has_image(self) -> bool:
        getter = getattr(self.viewer, "image", None)
        return callable(getter) and getter() is not None

    def _update_enabled(self, *_args) -> None:
        for action in (self.export_action, self.export_plain_action):
            action.setEnabled(self._has_image())

    def export_png_dialog(self, with_overlays: bool) -> None:
        if not self._has_image():
            return
        stem = Path(self.loader.current_path or "image").stem
        suffix = "" if with_overlays else "_plain"
        path, _ = QFileDialog.getSaveFileName(
            self, "Export as PNG", str(Path(self._start_dir()) / f"{stem}{suffix}.png"), "PNG images (*.png)"
        )
        if not path:
            return
        self.export_png(path, with_overlays)

    def export_png(self, path: str, with_overlays: bool = True) -> bool:
        """Write the current view to ``path`` (".png" added when missing); False on failure."""
        if not path.lower().endswith(".png"):
            path += ".png"
        try:
            self.viewer.export_png(path, with_overlays=with_overlays)
        except CxrError as exc:
            self.notify("Export failed", str(exc))
            return False
        except OSError as exc:
            self.notify("Export failed", f"Could not write {Path(path).name}: {exc.strerror or exc}")
            return False
        self.prefs.last_directory = os.path.dirname(path)
        self.statusBar().showMessage(f"Exported {Path(path).name}", 5000)
        return True

    def shortcut_groups(self) -> list[tuple[str, list[QAction]]]:
        return [
            ("File", self.file_actions),
            *[(f"View › {title.replace('&', '')}", actions) for title, actions in self.viewer_groups],
            ("View › Window", self.window_actions),
            ("Analysis", [a for a in self.analysis_menu.actions() if not a.isSeparator()]),
            ("Help", [self.shortcuts_action, self.about_action]),
        ]

    def show_shortcuts(self) -> ShortcutsDialog:
        dialog = ShortcutsDialog(self.shortcut_groups(), self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def _toggle_full_screen(self, on: bool) -> None:
        self.showFullScreen() if on else self.showNormal()

    def _focus_tag_search(self) -> None:
        self.tags_dock.show()
        self.tags.search.setFocus()
        self.tags.search.selectAll()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.indexer.cancel()
        self.thumbnails.clear()
        self.settings.save_window(self)
        self.settings.save_preferences(self.prefs)
        super().closeEvent(event)
