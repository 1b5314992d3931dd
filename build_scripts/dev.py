#!/usr/bin/env python3
"""One-command set-up for CXR Studio on a fresh machine.

    python3 build_scripts/dev.py run [PATH ...]    install what is missing, then start the app
    python3 build_scripts/dev.py test [PYTEST ARGS] install what is missing, then run the test suite
    python3 build_scripts/dev.py cxr ARGS...        install what is missing, then run the `cxr` CLI

Everything goes into ./.venv next to this checkout. On Debian/Ubuntu, missing system libraries
(Qt's runtime libraries, and dcmtk for the reference-renderer tests) are installed with apt-get
when running as root (or printed as a command to run otherwise). Uses only the standard library.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
STAMP = VENV / ".cxr-studio-installed"

# Qt (PySide6) needs these shared libraries even with the offscreen platform; xcb ones for a screen.
QT_DEBS = [
    "libegl1", "libgl1", "libxkbcommon0", "libfontconfig1", "libdbus-1-3", "libglib2.0-0",
    "libxkbcommon-x11-0", "libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1", "libxcb-image0",
    "libxcb-render-util0", "libxcb-xinerama0", "libxcb-shape0", "libxcb-randr0", "libxcb-xfixes0",
]
TEST_DEBS = ["dcmtk"]  # dcmj2pnm: the independent reference renderer the display tests compare with


def log(msg: str) -> None:
    print(f"[dev] {msg}", flush=True)


def missing_debs(names: list[str]) -> list[str]:
    if not shutil.which("dpkg-query"):
        return []
    out = []
    for name in names:
        res = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True, check=False
        )
        if "install ok installed" not in res.stdout:
            out.append(name)
    return out


def ensure_system_packages(names: list[str]) -> None:
    if platform.system() != "Linux" or not shutil.which("apt-get"):
        return
    missing = missing_debs(names)
    if not missing:
        return
    if os.geteuid() != 0:
        sudo = "sudo " if shutil.which("sudo") else ""
        log(f"missing system packages; please run: {sudo}apt-get install -y {' '.join(missing)}")
        return
    log(f"installing system packages: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


def torch_pins() -> list[str]:
    """torch/torchvision pairs known to import together on this platform."""
    machine = platform.machine().lower()
    if sys.platform.startswith("linux") and machine in ("x86_64", "amd64"):
        return ["torch==2.14.1", "torchvision==0.29.1"]
    if sys.platform.startswith("linux") and machine in ("aarch64", "arm64"):
        return ["torch==2.9.1", "torchvision==0.24.1"]
    return ["torch", "torchvision"]


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_venv() -> Path:
    pyproject = (ROOT / "pyproject.toml").read_bytes()
    wanted = hashlib.sha256(pyproject + " ".join(torch_pins()).encode() + sys.version.encode()).hexdigest()
    py = venv_python()
    if py.exists() and STAMP.exists() and STAMP.read_text().strip() == wanted:
        return py
    if not py.exists():
        log(f"creating virtual environment in {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [str(py), "-m", "pip", "install", "--disable-pip-version-check"]
    log(f"installing {' '.join(torch_pins())} (first run only; large)")
    subprocess.run([*pip, *torch_pins()], check=True)
    log("installing CXR Studio and its dependencies")
    subprocess.run([*pip, "-e", f"{ROOT}[dev,tune]"], check=True)
    STAMP.write_text(wanted)
    return py


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("run", "test", "cxr"):
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    ensure_system_packages(QT_DEBS + (TEST_DEBS if command == "test" else []))
    py = str(ensure_venv())
    env = dict(os.environ)
    if command == "run":
        return subprocess.call([py, "-m", "app", *rest], cwd=ROOT, env=env)
    if command == "cxr":
        return subprocess.call([py, "-m", "ml", *rest], cwd=ROOT, env=env)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    return subprocess.call([py, "-m", "pytest", *rest], cwd=ROOT, env=env)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
