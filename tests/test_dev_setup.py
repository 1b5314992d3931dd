"""build_scripts/dev.py and requirements.lock: a fresh machine gets the versions the tests ran with.

The real fresh-clone install takes minutes and downloads gigabytes, so these tests check what it
decides and reads, in milliseconds: the lock covers pyproject.toml, this venv matches the lock, the
torch build choice, and that an unreachable PyTorch index costs seconds, never a hang.
"""

from __future__ import annotations

import importlib.util
import socket
import sys
import threading
import time
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib", reason="the lock is for Python 3.11+ (tomllib)")
ROOT = Path(__file__).resolve().parents[1]


def load_dev():
    spec = importlib.util.spec_from_file_location("cxr_dev_script", ROOT / "build_scripts" / "dev.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dev = load_dev()


def locked() -> dict[str, tuple[str, str]]:
    """name -> (version, marker) from requirements.lock."""
    out = {}
    for line in dev.LOCK.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        req, _, marker = line.partition(";")
        name, _, version = req.strip().partition("==")
        out[canonicalize_name(name)] = (version.strip(), marker.strip())
    return out


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    lines = project["dependencies"] + [r for e in dev.EXTRAS.split(",") for r in extras[e]]
    return [Requirement(line) for line in lines]


def test_lock_pins_every_declared_dependency_within_its_range():
    lock = locked()
    missing, outside = [], []
    for req in declared():
        name = canonicalize_name(req.name)
        if dev.in_torch_stack(name):
            continue  # pinned by dev.torch_pins(), per platform
        if name not in lock:
            missing.append(name)
        elif not req.specifier.contains(lock[name][0], prereleases=True):
            outside.append(f"{name}=={lock[name][0]} not in {req.specifier}")
    assert not missing and not outside, (
        f"requirements.lock is out of date (run python3 build_scripts/dev.py lock): {missing + outside}"
    )


def test_lock_leaves_torch_and_its_cuda_libraries_to_the_torch_install():
    names = set(locked())
    assert not {n for n in names if dev.in_torch_stack(n)}
    assert {"torchmetrics", "torchxrayvision"} <= names  # "torch..." packages that are not torch


def test_this_venv_has_the_locked_versions():
    """The tests run with the lock's versions (a fresh `dev.py test` installs exactly these)."""
    env = {"python_full_version": ".".join(map(str, sys.version_info[:3]))}
    different = []
    for name, (version, marker) in locked().items():
        if marker and not Marker(marker).evaluate(env):
            continue
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            different.append(f"{name} not installed (lock: {version})")
            continue
        if have != version:
            different.append(f"{name} {have} (lock: {version})")
    assert not different, f"venv differs from requirements.lock (re-lock or reinstall): {different}"


def test_torch_pins_are_the_pairs_known_to_import_together(monkeypatch):
    monkeypatch.setattr(dev.sys, "platform", "linux")
    monkeypatch.setattr(dev.platform, "machine", lambda: "x86_64")
    assert dev.torch_pins() == ["torch==2.14.1", "torchvision==0.29.1"]
    monkeypatch.setattr(dev.platform, "machine", lambda: "aarch64")
    assert dev.torch_pins() == ["torch==2.9.1", "torchvision==0.24.1"]


def test_cpu_wheels_without_gpu_cuda_build_with_one(monkeypatch):
    monkeypatch.delenv("CXR_STUDIO_TORCH", raising=False)
    monkeypatch.setattr(dev.sys, "platform", "linux")
    monkeypatch.setattr(dev.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(dev, "has_nvidia_gpu", lambda: False)
    assert dev.torch_variant() == "cpu"
    monkeypatch.setattr(dev, "has_nvidia_gpu", lambda: True)
    assert dev.torch_variant() == "cuda"
    monkeypatch.setattr(dev.platform, "machine", lambda: "aarch64")  # PyPI's aarch64 wheels are CPU builds
    assert dev.torch_variant() == "pypi"
    monkeypatch.setenv("CXR_STUDIO_TORCH", "cpu")
    assert dev.torch_variant() == "cpu"

    args, line = dev.torch_install_args("cpu", reachable=lambda url: True)
    assert args[:2] == ["--index-url", dev.CPU_INDEX] and args[-2:] == dev.torch_pins()
    args, line = dev.torch_install_args("cpu", reachable=lambda url: False)
    assert args == dev.torch_pins() and "not reachable" in line and "PyPI" in line  # one clear line
    args, line = dev.torch_install_args("cuda", reachable=lambda url: pytest.fail("no probe needed"))
    assert args == dev.torch_pins() and "CUDA" in line


def test_an_unreachable_pytorch_index_costs_seconds_not_a_hang():
    # a closed port: refused at once
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    start = time.monotonic()
    assert not dev.index_reachable(f"http://127.0.0.1:{closed}/whl/cpu/torch/", timeout=1.0)
    # a server that accepts and never answers (a black-holed proxy): the timeout ends it
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    held = []
    thread = threading.Thread(target=lambda: held.append(server.accept()), daemon=True)
    thread.start()
    try:
        assert not dev.index_reachable(f"http://127.0.0.1:{server.getsockname()[1]}/", timeout=1.0)
    finally:
        server.close()
        for conn, _ in held:
            conn.close()
    assert time.monotonic() - start < 10
    assert dev.PROBE_TIMEOUT_S <= 10  # what a real run waits at most before falling back to PyPI


def test_a_changed_lock_or_torch_build_reinstalls(tmp_path, monkeypatch):
    lock = tmp_path / "requirements.lock"
    lock.write_text("numpy==2.0.0\n")
    monkeypatch.setattr(dev, "LOCK", lock)
    before = dev.install_state("cpu")
    assert dev.install_state("cpu") == before  # stable: a second run installs nothing
    assert dev.install_state("cuda") != before
    lock.write_text("numpy==2.0.1\n")
    assert dev.install_state("cpu") != before


def test_dev_script_uses_only_the_standard_library():
    import ast

    tree = ast.parse((ROOT / "build_scripts" / "dev.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported - set(sys.stdlib_module_names)
