"""Keep pydicom's chatter out of our logs without importing pydicom first.

pydicom logs every non-conformant value it meets at WARNING (the value can be a patient's name),
and its import sets the "pydicom" logger's level to WARNING, so a level set before that import
does not last and setting it afterwards means importing pydicom (0.3 s) before the window shows.
A filter on our own handlers drops those records whenever pydicom is imported, and costs nothing
until then.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable


class DropLibraryRecords(logging.Filter):
    """Drops the records of one library's loggers (``name`` and its children) below ``level``."""

    def __init__(self, library: str, level: int) -> None:
        super().__init__()
        self.library, self.level = library, level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= self.level:
            return True
        name = record.name
        return not (name == self.library or name.startswith(self.library + "."))


def quiet_pydicom(level: int, handlers: Iterable[logging.Handler] | None = None) -> None:
    """pydicom's records below ``level`` no longer reach ``handlers`` (default: the root logger's).
    Calling it again updates the level instead of stacking filters."""
    for handler in list(logging.getLogger().handlers if handlers is None else handlers):
        for existing in handler.filters:
            if isinstance(existing, DropLibraryRecords) and existing.library == "pydicom":
                existing.level = level
                break
        else:
            handler.addFilter(DropLibraryRecords("pydicom", level))
