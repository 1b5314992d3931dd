"""Where unexpected errors are logged with their traceback (never patient names).

Everything written here goes through :func:`ml.scrub.scrub` (identifying values registered as
headers are read, byte literals, person names), so a third-party message quoting raw header
bytes cannot put a patient's name in the log.
"""

from __future__ import annotations

import logging
import traceback
from datetime import datetime
from pathlib import Path

from ml.paths import user_data_dir as user_data_dir  # re-exported: the app's data folder
from ml.scrub import ScrubFilter, install, scrub


def error_log_path() -> Path:
    return user_data_dir() / "logs" / "errors.log"


def log_unexpected(exc: BaseException) -> Path:
    path = error_log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"--- {datetime.now().isoformat(timespec='seconds')}\n")
            fh.write(scrub(text))
    except OSError:
        pass
    return path


def install_error_log(level: int = logging.ERROR) -> logging.Handler | None:
    """Scrub every log record from now on and append records at ``level`` or above (the GUI's
    unexpected errors with their tracebacks) to errors.log. Returns the handler (None when the
    folder cannot be written)."""
    install()
    path = error_log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(path, encoding="utf-8", delay=True)
    except OSError:
        return None
    handler.setLevel(level)
    handler.addFilter(ScrubFilter())
    handler.setFormatter(logging.Formatter("--- %(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler
