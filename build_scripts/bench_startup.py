"""Start-up and quit benchmark (issue 13): the real app against a bare PySide6 + pyqtgraph window.

    .venv/bin/python build_scripts/bench_startup.py [--repeats N] [--display :93]

Each repeat launches, alternately, a bare window (``QMainWindow`` after ``import pyqtgraph``) and
the real app (``python -m app``, a fresh ``CXR_STUDIO_HOME``), under X (its own Xvfb on
``--display`` when none is running there), and measures the time from the process start until its
window is *mapped* (``xdotool search --onlyvisible --name``), waits until it is idle (under 2 % CPU over a second: the
default model has loaded), then sends Ctrl+Q to it and measures the time until the process has
exited. Medians and the ratios real / bare are printed (goal: window <= 1.5x
the bare window, Ctrl+Q -> exit <= 1 s). Also prints what ``python -X importtime -c "import
app.main_window"`` imports of torch, torchvision and pydicom (goal: none before the window shows).

Needs Xvfb and xdotool (Debian: ``apt-get install -y xvfb xdotool``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "pydicom")
BARE_TITLE, REAL_TITLE = "^bare-bench-window$", "^CXR Studio$"  # Qt sets no _NET_WM_PID without a WM

BARE = """
import sys
import pyqtgraph  # noqa: F401 - the viewer's own dependency, imported by the real app too
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication(sys.argv)
w = QMainWindow()
w.setWindowTitle("bare-bench-window")
w.resize(1200, 800)
QShortcut(QKeySequence.StandardKey.Quit, w, activated=app.quit)
w.show()
sys.exit(app.exec())
"""


def _visible_window(title: str) -> str | None:
    out = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", title], capture_output=True,
                         text=True, check=False)  # fmt: skip
    ids = out.stdout.split()
    return ids[-1] if ids else None


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def wait_idle(pid: int, timeout: float) -> None:
    """Until the process has used under 2 % of a CPU over one second (or ``timeout``)."""
    hz, end = os.sysconf("SC_CLK_TCK"), time.perf_counter() + timeout
    last = _cpu_ticks(pid)
    while time.perf_counter() < end:
        time.sleep(1.0)
        now = _cpu_ticks(pid)
        if now - last < 0.02 * hz:
            return
        last = now


def launch(cmd: list[str], title: str, env: dict[str, str], timeout: float, tries: int = 3) -> tuple[float, float]:
    """(seconds to a mapped window, seconds from Ctrl+Q to exit). A launch whose X connection was
    refused (now and then Xvfb here refuses one; Qt then aborts at once) is repeated, ``tries`` in all."""
    for attempt in range(1, tries + 1):
        try:
            return _launch(cmd, title, env, timeout)
        except RuntimeError as exc:
            if "could not connect to display" not in str(exc) or attempt == tries:
                raise
            print(f"  (X refused a connection; launch repeated, attempt {attempt + 1})", flush=True)
    raise AssertionError("unreachable")


def _launch(cmd: list[str], title: str, env: dict[str, str], timeout: float) -> tuple[float, float]:
    t0 = time.perf_counter()
    log = open(Path(env["CXR_STUDIO_HOME"]) / "launch.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=log)
    try:
        wid = None
        while wid is None:
            if proc.poll() is not None:
                tail = (Path(env["CXR_STUDIO_HOME"]) / "launch.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{cmd} exited with {proc.returncode} before showing a window:\n{tail}")
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError(f"{cmd}: no window after {timeout:.0f} s")
            wid = _visible_window(title)
            if wid is None:
                time.sleep(0.02)
        shown = time.perf_counter() - t0
        wait_idle(proc.pid, timeout)  # start-up jobs (the default model's loading) finish first
        # no window manager under Xvfb: focus it ourselves, then a real (XTEST) key press; Qt ignores
        # the synthetic events of ``xdotool key --window``
        subprocess.run(["xdotool", "windowfocus", "--sync", wid], capture_output=True, check=False)
        t1 = time.perf_counter()
        subprocess.run(["xdotool", "key", "ctrl+q"], capture_output=True, check=False)
        try:
            proc.wait(timeout=min(timeout, 30.0))
        except subprocess.TimeoutExpired:
            return shown, float("nan")  # Ctrl+Q did not quit it
        quit_s = time.perf_counter() - t1
        if proc.returncode != 0:
            tail = (Path(env["CXR_STUDIO_HOME"]) / "launch.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{cmd} exited with {proc.returncode} after Ctrl+Q:\n{tail}")
        return shown, quit_s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def heavy_imports() -> list[str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import app.main_window"], env=env,
                         cwd=REPO, capture_output=True, text=True, check=False)  # fmt: skip
    found = []
    for line in out.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[2].strip() in HEAVY:
            found.append(f"{parts[2].strip()} ({int(parts[1]) / 1e6:.2f} s cumulative)")
    return found


def ensure_display(display: str) -> subprocess.Popen | None:
    cmd = (
        ["xdpyinfo", "-display", display]
        if shutil.which("xdpyinfo")
        else ["xwininfo", "-root", "-display", display]
    )
    probe = subprocess.run(cmd, capture_output=True, check=False)
    if probe.returncode == 0:
        return None
    server = subprocess.Popen(["Xvfb", display, "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 15.0  # wait until it answers (a fixed sleep lost the race at times)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        if subprocess.run(cmd, capture_output=True, check=False).returncode == 0:
            break
    return server


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--display", default=":93")
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args()
    server = ensure_display(args.display)
    os.environ["DISPLAY"] = args.display  # for xdotool
    try:
        with tempfile.TemporaryDirectory() as home:
            env = dict(os.environ, DISPLAY=args.display, QT_QPA_PLATFORM="xcb", CXR_STUDIO_HOME=home,
                       PYTHONPATH=str(REPO))  # fmt: skip
            env.pop("WAYLAND_DISPLAY", None)
            # both launch with compiled bytecode, as an installed app (pip, PyInstaller) does: with
            # PYTHONDONTWRITEBYTECODE set (this sandbox sets it) every launch would recompile the
            # project's ~250 modules, which the bare window (site-packages only) never pays
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(Path(home) / "pycache")
            bare_cmd = [sys.executable, "-c", BARE]
            real_cmd = [sys.executable, "-m", "app"]
            launch(bare_cmd, BARE_TITLE, env, args.timeout)  # first runs: bytecode, settings,
            launch(real_cmd, REAL_TITLE, env, args.timeout)  # default model, file caches
            bare, real = [], []
            for _ in range(args.repeats):
                bare.append(launch(bare_cmd, BARE_TITLE, env, args.timeout))
                real.append(launch(real_cmd, REAL_TITLE, env, args.timeout))
    finally:
        if server is not None:
            server.terminate()
            server.wait()
    b_show, r_show = (statistics.median(x[0] for x in v) for v in (bare, real))
    b_quit, r_quit = (statistics.median(x[1] for x in v) for v in (bare, real))
    print(f"{args.repeats} launches each, alternating, medians; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")  # fmt: skip
    print(f"window mapped   bare PySide6+pyqtgraph {b_show:6.2f} s   CXR Studio {r_show:6.2f} s   "
          f"ratio {r_show / b_show:.2f}x (goal <= 1.5x)")  # fmt: skip
    print(f"Ctrl+Q -> exit  bare                   {b_quit:6.2f} s   CXR Studio {r_quit:6.2f} s   "
          f"ratio {r_quit / b_quit:.2f}x (goal <= 1 s)")  # fmt: skip
    heavy = heavy_imports()
    print("import app.main_window imports: " + (", ".join(heavy) if heavy else "none of " + ", ".join(HEAVY)))


if __name__ == "__main__":
    main()
