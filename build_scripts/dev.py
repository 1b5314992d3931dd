#!/usr/bin/env python3
"""One-command set-up for CXR Studio on a fresh machine.

    python3 build_scripts/dev.py run [PATH ...]    install what is missing, then start the app
    python3 build_scripts/dev.py test [PYTEST ARGS] install what is missing, then run the test suite
    python3 build_scripts/dev.py cxr ARGS...        install what is missing, then run the `cxr` CLI
    python3 build_scripts/dev.py lock               rewrite requirements.lock from the current .venv

Everything goes into ./.venv next to this checkout. On Debian/Ubuntu, missing system libraries
(Qt's runtime libraries, and dcmtk for the reference-renderer tests) are installed with apt-get
when running as root (or printed as a command to run otherwise). Uses only the standard library.

Versions: PyTorch/torchvision are the pinned pair of :func:`torch_pins`; everything else comes
from ``requirements.lock`` (the exact versions the test suite was run with; made by ``dev.py lock``
with ``uv pip compile``). A changed pyproject.toml, lock file or torch choice reinstalls.

PyTorch build: where the machine has no NVIDIA GPU, the CPU-only wheels from PyTorch's own index
(a few hundred MB instead of several GB of CUDA libraries); with an NVIDIA GPU, the CUDA build
from PyPI. When PyTorch's index cannot be reached within a few seconds (an offline mirror, a
closed network), it says so in one line and installs from PyPI instead. ``CXR_STUDIO_TORCH=cpu``,
``cuda`` or ``pypi`` overrides the choice.
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
LOCK = ROOT / "requirements.lock"
LOCK_PYTHON = (3, 11)  # the lock is resolved for this Python and newer (all platforms)
EXTRAS = "dev,tune,fast"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PROBE_TIMEOUT_S = 5.0
VARIANTS = ("cpu", "cuda", "pypi")
# torch and what its own wheel pins (CUDA libraries differ between builds): never in the lock
TORCH_STACK = {"torch", "torchvision", "triton"}
TORCH_STACK_PREFIXES = ("nvidia-", "cuda-")

# Qt (PySide6) needs these shared libraries even with the offscreen platform; xcb ones for a screen.
QT_DEBS = [
    "libegl1", "libgl1", "libxkbcommon0", "libfontconfig1", "libdbus-1-3", "libglib2.0-0",
    "libxkbcommon-x11-0", "libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1", "libxcb-image0",
    "libxcb-render-util0", "libxcb-xinerama0", "libxcb-shape0", "libxcb-randr0", "libxcb-xfixes0",
]
# dcmtk: dcmj2pnm, the independent reference renderer the display tests compare with, and storescu;
# orthanc (+ its DICOMweb plugin): the real PACS of the pacs tests; dicom3tools: dciodvfy; Xvfb and
# xdotool (x11-utils: xdpyinfo): the real-X launch test and bench_startup.py
TEST_DEBS = ["dcmtk", "orthanc", "orthanc-dicomweb", "dicom3tools", "xvfb", "xdotool", "x11-utils"]


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


def has_nvidia_gpu() -> bool:
    """An NVIDIA GPU with a working driver (``nvidia-smi -L`` lists one)."""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return out.returncode == 0 and "GPU" in out.stdout
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())


def torch_variant() -> str:
    """"cpu" (CPU-only wheels), "cuda" or "pypi" (PyPI's default build) for this machine."""
    choice = os.environ.get("CXR_STUDIO_TORCH", "").strip().lower()
    if choice in VARIANTS:
        return choice
    # PyPI's wheels are CUDA builds only on Linux x86_64; elsewhere they are already CPU (or MPS).
    linux_x86 = sys.platform.startswith("linux") and platform.machine().lower() in ("x86_64", "amd64")
    if not linux_x86:
        return "pypi"
    return "cuda" if has_nvidia_gpu() else "cpu"


def index_reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a package index answers within ``timeout`` seconds (no hang on a closed network)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return True
    except urllib.error.HTTPError as exc:  # it answered (a 403/405 to HEAD still means reachable)
        return exc.code < 500
    except (OSError, ValueError):
        return False


def torch_install_args(variant: str, reachable=index_reachable) -> tuple[list[str], str]:
    """(pip arguments for torch, one log line). The CPU index only when it answers."""
    pins = torch_pins()
    if variant != "cpu":
        what = "the CUDA build" if variant == "cuda" else "the default build"
        return pins, f"installing {' '.join(pins)} from PyPI ({what}; first run only; large)"
    if reachable(f"{CPU_INDEX}/torch/"):
        return (
            ["--index-url", CPU_INDEX, "--timeout", "30", "--retries", "2", *pins],
            f"no NVIDIA GPU: installing {' '.join(pins)} CPU-only wheels from {CPU_INDEX}",
        )
    return pins, (
        f"no NVIDIA GPU, but {CPU_INDEX} is not reachable: installing {' '.join(pins)} from PyPI "
        "instead (the CUDA build: larger, runs on the CPU all the same)"
    )


def install_torch(pip: list[str], variant: str) -> None:
    args, line = torch_install_args(variant)
    log(line)
    if subprocess.run([*pip, *args], check=False).returncode == 0:
        return
    if "--index-url" not in args:
        raise SystemExit("[dev] could not install PyTorch (see pip's message above)")
    log(f"the CPU-only install from {CPU_INDEX} failed: installing {' '.join(torch_pins())} from PyPI instead")
    subprocess.run([*pip, *torch_pins()], check=True)


def in_torch_stack(requirement_line: str) -> bool:
    """Whether a "name==version ; marker" line is torch, torchvision or a library torch's wheel pins."""
    import re

    name = re.split(r"[ ;=<>!~\[]", requirement_line.strip(), maxsplit=1)[0].lower().replace("_", "-")
    return name in TORCH_STACK or name.startswith(TORCH_STACK_PREFIXES)


def use_lock() -> bool:
    return LOCK.is_file() and sys.version_info[:2] >= LOCK_PYTHON


def install_state(variant: str) -> str:
    """What the venv must have been installed from; a change of any part reinstalls."""
    parts = [(ROOT / "pyproject.toml").read_bytes(), LOCK.read_bytes() if use_lock() else b"unlocked",
             " ".join(torch_pins()).encode(), variant.encode(), sys.version.encode()]
    return hashlib.sha256(b"\0".join(parts)).hexdigest()


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_venv() -> Path:
    py = venv_python()
    previous = STAMP.read_text().split() if py.exists() and STAMP.exists() else []
    override = os.environ.get("CXR_STUDIO_TORCH", "").strip().lower()
    # the build chosen at the first install is kept: no GPU probe and no network on later runs
    variant = override if override in VARIANTS else previous[1] if len(previous) > 1 else torch_variant()
    if previous and previous[0] == install_state(variant):
        return py
    if not py.exists():
        log(f"creating virtual environment in {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [str(py), "-m", "pip", "install", "--disable-pip-version-check"]
    install_torch(pip, variant)
    if use_lock():
        log(f"installing the locked dependencies ({LOCK.name})")
        subprocess.run([*pip, "-r", str(LOCK)], check=True)
        log("installing CXR Studio itself (editable)")
        subprocess.run([*pip, "--no-deps", "-e", str(ROOT)], check=True)
    else:
        why = "no lock file" if not LOCK.is_file() else f"the lock is for Python {'.'.join(map(str, LOCK_PYTHON))}+"
        log(f"{why}: installing CXR Studio with the newest versions pyproject.toml allows")
        subprocess.run([*pip, "-e", f"{ROOT}[{EXTRAS}]"], check=True)
    STAMP.write_text(f"{install_state(variant)} {variant}\n")
    return py


def write_lock(py: Path) -> int:
    """requirements.lock from the venv's versions (``uv pip compile``; all platforms, Python 3.11+)."""
    uv = shutil.which("uv") or str(py.parent / "uv")
    if not Path(uv).exists():
        log("installing uv into the venv (to compile the lock)")
        subprocess.run([str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q", "uv"], check=True)
    import tempfile

    frozen = subprocess.run([str(py), "-m", "pip", "freeze", "--exclude-editable"], capture_output=True,
                            text=True, check=True).stdout.splitlines()
    keep = [line for line in frozen if "==" in line and not in_torch_stack(line)]
    with tempfile.TemporaryDirectory() as tmp:
        constraints = Path(tmp) / "venv-versions.txt"
        constraints.write_text("\n".join([*keep, *torch_pins()]) + "\n")
        out = Path(tmp) / "lock.txt"
        cmd = [uv, "pip", "compile", str(ROOT / "pyproject.toml"), *sum((["--extra", e] for e in EXTRAS.split(",")), []),
               "--universal", "--python-version", ".".join(map(str, LOCK_PYTHON)), "--no-annotate", "-q",
               "--no-header", "-c", str(constraints), "-o", str(out)]
        if subprocess.run(cmd, cwd=ROOT, check=False).returncode != 0:
            return 1
        lines = [line for line in out.read_text().splitlines()
                 if line.strip() and not in_torch_stack(line)]
    header = [
        "# The exact versions the test suite was run with (all platforms, Python 3.11+).",
        "# build_scripts/dev.py installs from it; PyTorch/torchvision are pinned in dev.py (torch_pins),",
        "# and the CUDA libraries come with the torch wheel, so neither is listed here.",
        "# Regenerate after changing dependencies in pyproject.toml: python3 build_scripts/dev.py lock",
    ]
    LOCK.write_text("\n".join(header + lines) + "\n")
    log(f"wrote {LOCK.name}: {len(lines)} packages")
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("run", "test", "cxr", "lock"):
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "lock":
        return write_lock(venv_python() if venv_python().exists() else ensure_venv())
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
