"""The real app under a real X server (Xvfb), as a user launches it: the window is mapped, the
default model loads, and Ctrl+Q (a real XTEST key press) ends the process with exit status 0.

The rest of the suite runs Qt offscreen; this is the one test of the xcb platform plugin, its
libraries and the launch path, through the same code as ``build_scripts/bench_startup.py`` (no
timing is asserted here: the README records the benchmark's figures). Xvfb and xdotool come with
the README's test command (``build_scripts/dev.py`` installs them with the other test packages).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    not (shutil.which("Xvfb") and shutil.which("xdotool")), reason="needs Xvfb and xdotool (dev.py installs them)"
)


def _bench():
    spec = importlib.util.spec_from_file_location("bench_startup", REPO / "build_scripts" / "bench_startup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_real_app_maps_its_window_and_quits_on_ctrl_q(tmp_path, monkeypatch):
    bench = _bench()
    display = f":{200 + os.getpid() % 500}"
    server = bench.ensure_display(display)
    monkeypatch.setenv("DISPLAY", display)  # for xdotool
    try:
        env = dict(os.environ, DISPLAY=display, QT_QPA_PLATFORM="xcb", CXR_STUDIO_HOME=str(tmp_path),
                   PYTHONPATH=str(REPO))  # fmt: skip
        env.pop("WAYLAND_DISPLAY", None)
        shown, quit_s = bench.launch([sys.executable, "-m", "app"], bench.REAL_TITLE, env, timeout=120.0)
    finally:
        if server is not None:
            server.terminate()
            server.wait()
    assert shown > 0
    assert quit_s == quit_s, "Ctrl+Q did not end the app within 30 s"  # NaN: still running
    log = (tmp_path / "launch.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-2000:]
