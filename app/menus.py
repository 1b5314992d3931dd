"""Menu pieces of the main window that need no window state: View menu sections, the recent-files
menu, the file filters, and which opened paths are worth remembering."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QWidget

IMAGE_FILTER = "Images (*.dcm *.dicom *.DCM *.png *.jpg *.jpeg *.PNG *.JPG *.JPEG DICOMDIR);;All files (*)"
ZIP_FILTER = "ZIP archives (*.zip);;All files (*)"

# View menu sections, by the viewer actions' object names (prefix match); the rest go at the end.
VIEW_SECTIONS = (
    ("&Tools", ("viewer_tool_",)),
    ("&Window / level", ("viewer_preset_", "viewer_auto_window", "viewer_invert", "viewer_reset")),
    ("&Zoom and orientation", ("viewer_zoom", "viewer_rotate", "viewer_flip", "viewer_magnifier")),
    ("&Frames and cine", ("viewer_next_frame", "viewer_previous_frame", "viewer_first_frame",
                          "viewer_last_frame", "viewer_cine")),
    ("&Measurements", ("viewer_delete_measurement", "viewer_clear_measurements")),
)


def group_viewer_actions(actions: list[QAction]) -> list[tuple[str, list[QAction]]]:
    """(section title, actions) in VIEW_SECTIONS order; unknown actions in a last "More" section."""
    groups: list[tuple[str, list[QAction]]] = [(title, []) for title, _ in VIEW_SECTIONS]
    rest: list[QAction] = []
    for action in actions:
        name = action.objectName()
        for i, (_title, prefixes) in enumerate(VIEW_SECTIONS):
            if name.startswith(prefixes):
                groups[i][1].append(action)
                break
        else:
            rest.append(action)
    if rest:
        groups.append(("&More", rest))
    return [(title, acts) for title, acts in groups if acts]


def make_action(parent: QWidget, text: str, slot: Callable[..., object],
                shortcut: QKeySequence | QKeySequence.StandardKey | str | None = None) -> QAction:
    action = QAction(text, parent)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    action.triggered.connect(slot)
    return action


def fill_recent_menu(menu: QMenu, recent: list[str], open_path: Callable[[str], object],
                     clear: Callable[[], object]) -> None:
    """Numbered recent paths (missing ones greyed out), then "Clear recent files"."""
    menu.clear()
    for i, path in enumerate(recent, start=1):
        action = menu.addAction(f"&{i % 10}  {Path(path).name}   —   {path}")
        action.setEnabled(os.path.exists(path))
        action.triggered.connect(lambda _checked=False, p=path: open_path(p))
    if not recent:
        menu.addAction("(none)").setEnabled(False)
    menu.addSeparator()
    menu.addAction("Clear recent files", clear).setEnabled(bool(recent))


def useful_recent(paths: list[str], sources: list[str]) -> list[str]:
    """The opened paths that gave at least one file (not a stray text file): worth remembering."""
    return [p for p in paths if any(s == p or s.startswith((p + os.sep, p + ":")) for s in sources)]
