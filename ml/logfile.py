"""Where unexpected errors are logged with their traceback (never patient names)."""

from __future__ import annotations

import os
import sys
import traceback
from datetime import datetime
from pathlib import Path


def user_data_dir() -> Path:
    """The user's CXR Studio folder (models, runs, cache, logs). CXR_STUDIO_HOME overrides it."""
    env = os.environ.get("CXR_STUDIO_HOME")
    if env:
        return Path(env)
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home())) / "CXR Studio"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "CXR Studio"
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "cxr-studio"


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
