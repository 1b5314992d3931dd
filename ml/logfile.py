"""Where unexpected errors are logged with their traceback (never patient names)."""

from __future__ import annotations

import traceback
from datetime import datetime
from pathlib import Path

from ml.paths import user_data_dir as user_data_dir  # re-exported: the app's data folder


def log_unexpected(exc: BaseException) -> Path:
    path = user_data_dir() / "logs" / "errors.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"--- {datetime.now().isoformat(timespec='seconds')}\n")
            fh.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    except OSError:
        pass
    return path
