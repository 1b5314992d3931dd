"""What the application remembers between runs (QSettings).

Organisation and application are both "CXR Studio". Tests (and anyone who wants a portable
profile) pass an INI file path instead, so the user's real settings are never touched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtWidgets import QMainWindow

ORGANISATION = "CXR Studio"
APPLICATION = "CXR Studio"
MAX_RECENT = 10


@dataclass
class Preferences:
    """User preferences; every field is stored under ``preferences/<name>``."""

    thumbnail_size: int = 96
    show_first_image: bool = True  # show the first image of every opened set automatically
    last_directory: str = ""  # where the open dialogs start


def _to_bool(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


class Settings:
    """A thin, typed layer over QSettings."""

    def __init__(self, path: str | os.PathLike[str] | None = None):
        if path is None:
            self.qsettings = QSettings(ORGANISATION, APPLICATION)
        else:
            self.qsettings = QSettings(os.fspath(path), QSettings.Format.IniFormat)

    # -- recent files ------------------------------------------------------------------------------
    def recent_files(self) -> list[str]:
        value = self.qsettings.value("recent/files", [])
        if value is None:
            return []
        if isinstance(value, str):  # QSettings returns a single-element list as a str
            value = [value] if value else []
        return [str(v) for v in value if str(v)][:MAX_RECENT]

    def add_recent(self, paths: str | os.PathLike[str] | list[str | os.PathLike[str]]) -> list[str]:
        """Put ``paths`` first (most recent first), dedupe, keep at most MAX_RECENT."""
        new = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
        front = [os.path.abspath(os.fspath(p)) for p in new]
        merged: list[str] = []
        for p in [*front, *self.recent_files()]:
            if p not in merged:
                merged.append(p)
        merged = merged[:MAX_RECENT]
        self.qsettings.setValue("recent/files", merged)
        self.qsettings.sync()
        return merged

    def remove_recent(self, path: str) -> None:
        self.qsettings.setValue("recent/files", [p for p in self.recent_files() if p != path])
        self.qsettings.sync()

    def clear_recent(self) -> None:
        self.qsettings.setValue("recent/files", [])
        self.qsettings.sync()

    # -- window ------------------------------------------------------------------------------------
    def save_window(self, window: QMainWindow) -> None:
        self.qsettings.setValue("window/geometry", window.saveGeometry())
        self.qsettings.setValue("window/state", window.saveState())
        self.qsettings.sync()

    def restore_window(self, window: QMainWindow) -> bool:
        """Restore geometry and dock layout; False when nothing was saved yet."""
        geometry = self.qsettings.value("window/geometry")
        state = self.qsettings.value("window/state")
        restored = False
        if isinstance(geometry, QByteArray | bytes) and geometry:
            restored = window.restoreGeometry(QByteArray(geometry)) or restored
        if isinstance(state, QByteArray | bytes) and state:
            restored = window.restoreState(QByteArray(state)) or restored
        return restored

    # -- preferences -------------------------------------------------------------------------------
    def preferences(self) -> Preferences:
        prefs = Preferences()
        for f in fields(Preferences):
            raw = self.qsettings.value(f"preferences/{f.name}")
            if raw is None:
                continue
            default = getattr(prefs, f.name)
            try:
                if isinstance(default, bool):
                    value: object = _to_bool(raw)
                elif isinstance(default, int):
                    value = int(raw)
                else:
                    value = str(raw)
            except (TypeError, ValueError):
                continue
            setattr(prefs, f.name, value)
        return prefs

    def save_preferences(self, prefs: Preferences) -> None:
        for f in fields(Preferences):
            self.qsettings.setValue(f"preferences/{f.name}", getattr(prefs, f.name))
        self.qsettings.sync()
