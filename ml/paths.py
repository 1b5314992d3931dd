"""The user's folders for CXR Studio, found with platformdirs (one place, not one per module).

``CXR_STUDIO_HOME`` set: everything of the app's lives under it (``<home>`` for data,
``<home>/cache`` for caches), which is how tests and portable installs keep the real profile
untouched. Otherwise the platform's per-user folders:

- Linux: ``$XDG_DATA_HOME/cxr-studio`` (``~/.local/share/cxr-studio``), ``~/.cache/cxr-studio``
- macOS: ``~/Library/Application Support/CXR Studio``, ``~/Library/Caches/CXR Studio``
- Windows: ``%LOCALAPPDATA%\\CXR Studio``, ``%LOCALAPPDATA%\\CXR Studio\\Cache``
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

ENV_HOME = "CXR_STUDIO_HOME"


def app_folder_name() -> str:
    """"cxr-studio" on Linux (XDG convention: lower case, no spaces), "CXR Studio" elsewhere."""
    return "CXR Studio" if sys.platform in ("win32", "darwin") else "cxr-studio"


def user_data_dir() -> Path:
    """The user's CXR Studio folder (models, runs, logs). ``CXR_STUDIO_HOME`` overrides it."""
    home = os.environ.get(ENV_HOME)
    if home:
        return Path(home).expanduser()
    return platformdirs.user_data_path(app_folder_name(), appauthor=False, roaming=False)


def user_cache_dir() -> Path:
    """Caches that may be deleted at any time: ``<CXR_STUDIO_HOME>/cache`` when that is set."""
    home = os.environ.get(ENV_HOME)
    if home:
        return Path(home).expanduser() / "cache"
    return platformdirs.user_cache_path(app_folder_name(), appauthor=False)


def platform_cache_dir() -> Path:
    """The platform's cache folder for the app, ignoring ``CXR_STUDIO_HOME`` (for caches that
    outlive a test session, e.g. downloaded test data)."""
    return platformdirs.user_cache_path(app_folder_name(), appauthor=False)
