"""The user's folders (ml.paths, platformdirs): CXR_STUDIO_HOME wins, else the platform's folders."""

from __future__ import annotations

import sys

import pytest

from ml import paths
from ml.imaging.listing import default_cache_dir
from ml.logfile import log_unexpected


def test_cxr_studio_home_holds_data_cache_and_logs(tmp_path, monkeypatch):
    monkeypatch.setenv("CXR_STUDIO_HOME", str(tmp_path / "home"))
    assert paths.user_data_dir() == tmp_path / "home"
    assert paths.user_cache_dir() == tmp_path / "home" / "cache"
    assert default_cache_dir() == tmp_path / "home" / "cache"  # ZIP members extracted there
    try:
        raise ValueError("x")
    except ValueError as exc:
        log = log_unexpected(exc)
    assert log == tmp_path / "home" / "logs" / "errors.log" and "ValueError" in log.read_text()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG folders are Linux's")
def test_without_home_the_xdg_folders_are_used(tmp_path, monkeypatch):
    monkeypatch.delenv("CXR_STUDIO_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert paths.user_data_dir() == tmp_path / "data" / "cxr-studio"  # as before platformdirs
    assert paths.user_cache_dir() == tmp_path / "cache" / "cxr-studio"
    assert default_cache_dir() == tmp_path / "cache" / "cxr-studio"
    monkeypatch.setenv("CXR_STUDIO_CACHE_DIR", str(tmp_path / "zips"))
    assert default_cache_dir() == tmp_path / "zips"


def test_windows_and_macos_folder_names(monkeypatch):
    for platform in ("win32", "darwin"):
        monkeypatch.setattr(sys, "platform", platform)
        assert paths.app_folder_name() == "CXR Studio"
