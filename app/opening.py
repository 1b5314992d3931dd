"""Opening files, folders and ZIPs and taking in what the background indexer finds: a mixin for
the main window (its File > Open actions, Open recent, and the indexer's signals).

The window owns the state it uses (declared below, set in ``MainWindow.__init__``): the indexer,
the browser, the viewer, the settings and preferences, the progress panel, the recent-files menu,
and the two request maps: ``_requests`` (request id -> the paths asked for, for Open recent) and
``_auto_show`` (requests whose first image is still to be shown).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QFileDialog, QMenu

from app.browser.rules import first_to_show, is_radiograph
from app.browser.texts import opened_message
from app.dialogs import format_problems
from app.menus import IMAGE_FILTER, ZIP_FILTER, fill_recent_menu, useful_recent
from app.settings import Preferences, Settings
from ml.imaging.index import InstanceEntry, StudyIndex


class OpeningMixin:
    """``open_paths`` and the Open dialogs; the indexer's batches, results, failures and cancels."""

    settings: Settings
    prefs: Preferences
    indexer: Any
    browser: Any
    viewer: Any
    progress: Any
    recent_menu: QMenu
    _requests: dict[int, list[str]]
    _auto_show: set[int]
    statusBar: Callable[[], Any]  # QMainWindow's (an annotation only: a stub here would shadow it)

    def notify(self, headline: str, details: str = "") -> None:  # provided by the window
        raise NotImplementedError

    # -- opening -----------------------------------------------------------------------------------
    def open_paths(self, paths: list[str | os.PathLike[str]]) -> int | None:
        """Index files/folders/ZIPs in the background; the first image is shown when it arrives."""
        clean = [os.path.abspath(os.fspath(p)) for p in paths if os.fspath(p)]
        if not clean:
            return None
        self.prefs.last_directory = os.path.dirname(clean[0]) if os.path.isfile(clean[0]) else clean[0]
        rid = self.indexer.open(clean)
        self._requests[rid] = clean
        if self.prefs.show_first_image:
            self._auto_show.add(rid)
        names = ", ".join(Path(p).name for p in clean[:3]) + ("…" if len(clean) > 3 else "")
        self.statusBar().showMessage(f"Opening {names}", 4000)
        return rid

    def _start_dir(self) -> str:
        return self.prefs.last_directory if os.path.isdir(self.prefs.last_directory) else str(Path.home())

    def open_files_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Open files", self._start_dir(), IMAGE_FILTER)
        self.open_paths(files)

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open folder", self._start_dir())
        if folder:
            self.open_paths([folder])

    def open_zip_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open ZIP", self._start_dir(), ZIP_FILTER)
        if path:
            self.open_paths([path])

    def _fill_recent_menu(self) -> None:
        fill_recent_menu(self.recent_menu, self.settings.recent_files(), lambda p: self.open_paths([p]),
                         self.settings.clear_recent)

    # -- indexing results --------------------------------------------------------------------------
    def _on_batch(self, rid: int, entries: list[InstanceEntry]) -> None:
        self.browser.add_instances(entries)
        if rid in self._auto_show:  # a radiograph at once; anything else when indexing is done
            first = first_to_show(entries)
            if first is not None and is_radiograph(first.meta) and self.browser.select_path(first.path):
                self._auto_show.discard(rid)
                self.viewer.setFocus()  # the viewer's keys (W, L, M, B, ...) work at once

    def _on_indexed(self, rid: int, index: StudyIndex) -> None:
        entries = list(index.instances())
        self._remember(self._requests.pop(rid, []), entries)
        self.browser.add_instances(entries)
        self.browser.add_errors(index.errors)
        if rid in self._auto_show:  # no image came in a batch: show the first file there is
            self._auto_show.discard(rid)
            first = first_to_show(entries)  # a radiograph, else other DICOM, else a PNG/JPEG
            if first is not None:
                self.browser.select_path(first.path)
        current = self.statusBar().currentMessage()
        if not current or current.startswith("Opening"):  # never hide a more useful message
            self.statusBar().showMessage(opened_message(index), 8000)
        if index.errors:
            count = len(index.errors)
            self.notify(f"{count} file{'s' * (count != 1)} could not be opened", format_problems(index.errors))

    def _on_index_failed(self, rid: int, message: str) -> None:
        self._requests.pop(rid, None)
        self._auto_show.discard(rid)
        self.notify("Could not open", message)

    def _on_index_cancelled(self, rid: int) -> None:
        self._requests.pop(rid, None)
        self._auto_show.discard(rid)
        self.statusBar().showMessage("Opening cancelled: the files found so far stay listed.", 8000)

    def _remember(self, paths: list[str], entries: list[InstanceEntry]) -> None:
        """Recent files: the opened paths that gave at least one file (not a stray text file)."""
        useful = useful_recent(paths, [e.source for e in entries])
        if useful:
            self.settings.add_recent(useful)

    def _set_busy(self, busy: bool) -> None:
        self.progress.set_busy(busy, "Opening files")
