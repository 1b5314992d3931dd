"""The PyInstaller spec of the double-click app: valid, complete, pointing at real files.

Building the app takes many minutes and gigabytes, so it never runs here: ``build_scripts/build_app.py``
builds it and smoke-tests the frozen executable. These tests catch, in milliseconds, the mistakes that
would only show up in a frozen app on a user's machine: a data file that is not bundled, a decoder
plugin pydicom cannot find (entry points live in package metadata), a subcommand module that is
only imported by name, or an exclusion of something the app imports.
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "build_scripts" / "cxr_studio.spec"
BUILD_SCRIPT = ROOT / "build_scripts" / "build_app.py"
PYINSTALLER_GLOBALS = {"SPECPATH", "Analysis", "PYZ", "EXE", "COLLECT", "BUNDLE"}


def spec_tree() -> ast.Module:
    return ast.parse(SPEC.read_text(encoding="utf-8"), filename=str(SPEC))


def spec_constants() -> dict[str, object]:
    """The spec's module-level literal assignments (APP_NAME, DATA_FILES, HIDDEN_IMPORTS, ...)."""
    constants: dict[str, object] = {}
    for node in spec_tree().body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass  # computed values (paths, PyInstaller objects)
    return constants


C = spec_constants()


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def module_file_exists(name: str) -> bool:
    """Whether a module exists, without importing it (``torchvision._C`` would import torch)."""
    top, *rest = name.split(".")
    spec = importlib.util.find_spec(top)
    if spec is None:
        return False
    if not rest:
        return True
    for location in spec.submodule_search_locations or []:
        folder = Path(location).joinpath(*rest[:-1])
        last = rest[-1]
        if (folder / last / "__init__.py").exists() or (folder / f"{last}.py").exists():
            return True
        if (
            any(folder.glob(f"{last}.*.so"))
            or any(folder.glob(f"{last}.*.pyd"))
            or any(folder.glob(f"{last}.so"))
        ):
            return True
    return False


def imports_of_project() -> set[str]:
    """Every module name app/ and ml/ import, at any depth (lazy imports inside functions too)."""
    names: set[str] = set()
    for package in ("app", "ml"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module)
                    names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_spec_compiles_and_builds_one_folder_app() -> None:
    code = compile(SPEC.read_text(encoding="utf-8"), str(SPEC), "exec")
    assert code is not None
    called = {
        n.func.id for n in ast.walk(spec_tree()) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }
    assert {"Analysis", "PYZ", "EXE", "COLLECT"} <= called
    undefined = {
        n.id for n in ast.walk(spec_tree()) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }
    defined = set(dir(builtins))
    defined |= {
        n.id for n in ast.walk(spec_tree()) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }
    defined |= {a.asname or a.name.split(".")[0] for n in ast.walk(spec_tree())
                if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}  # fmt: skip
    defined |= {n.name for n in ast.walk(spec_tree()) if isinstance(n, ast.FunctionDef)}
    defined |= {a.arg for n in ast.walk(spec_tree()) if isinstance(n, ast.FunctionDef) for a in n.args.args}
    assert undefined - defined - PYINSTALLER_GLOBALS == set(), "names the spec uses but never defines"
    assert C["APP_NAME"] == "cxr-studio"


def test_entry_script_is_the_gui_and_cli_main() -> None:
    entry = ROOT / str(C["ENTRY_SCRIPT"])
    source = entry.read_text(encoding="utf-8")
    assert 'if __name__ == "__main__":' in source and "def main(" in source
    from app.__main__ import CLI_COMMANDS

    assert {"info", "render", "models", "predict", "train", "evaluate"} <= set(CLI_COMMANDS)


def test_bundled_data_files_exist_where_the_code_looks_for_them() -> None:
    data = dict(C["DATA_FILES"])
    for src in data:
        assert (ROOT / src).is_file(), f"{src} is listed in the spec but does not exist"
    # app.__main__.resource_path: <bundle>/resources/<name>
    assert data["resources/style.qss"] == "resources"
    # ml.models.catalogue: catalogue.json next to the module, so in the module's package folder
    assert data["ml/models/catalogue.json"] == "ml/models"
    assert not any("screenshots" in src for src in data), "README screenshots do not belong in the app"


def test_every_data_file_of_our_packages_is_bundled() -> None:
    """A new JSON/QSS/icon next to the code must be added to DATA_FILES, or the frozen app lacks it."""
    listed = {src for src, _ in C["DATA_FILES"]}
    files = [
        p.relative_to(ROOT).as_posix()
        for package in ("app", "ml")
        for p in (ROOT / package).rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    ]
    assert files, "expected at least ml/models/catalogue.json"
    assert sorted(set(files) - listed) == []
    for src, dest in C["DATA_FILES"]:
        if src.startswith(("app/", "ml/")):
            assert dest == str(Path(src).parent.as_posix()), f"{src} must keep its package folder"


def test_pylibjpeg_decoders_are_bundled_with_their_entry_points() -> None:
    """pydicom finds pylibjpeg's decoders through entry points (package metadata) and imports them
    by name: both the metadata and the modules must be in the bundle, for JPEG 2000 above all."""
    eps = metadata.entry_points(group="pylibjpeg.pixel_data_decoders")
    assert eps, "the pylibjpeg plugins are not installed"
    metadata_names = {canonical(n) for n in C["METADATA"]}
    modules = set(C["COLLECT_SUBMODULES"]) | set(C["HIDDEN_IMPORTS"])
    covered_uids = set()
    for ep in eps:
        assert canonical(ep.dist.name) in metadata_names, f"metadata of {ep.dist.name} is not copied"
        assert ep.module.split(".")[0] in modules, f"{ep.module} (decoder of {ep.name}) is not bundled"
        covered_uids.add(ep.name)
    assert "1.2.840.10008.1.2.4.90" in covered_uids  # JPEG 2000 lossless
    assert "1.2.840.10008.1.2.4.50" in covered_uids  # JPEG baseline
    assert "pylibjpeg" in metadata_names
    assert "pydicom.pixels.decoders.pylibjpeg" in C["HIDDEN_IMPORTS"]


def test_subcommands_imported_by_name_are_bundled() -> None:
    """ml.cli imports its subcommand modules with importlib: static analysis cannot see them."""
    names = re.findall(r'"(ml\.cli_\w+)"', (ROOT / "ml" / "cli.py").read_text(encoding="utf-8"))
    assert names, "ml/cli.py no longer names its subcommand modules: update this test"
    for name in names:
        assert name in C["HIDDEN_IMPORTS"], name
    assert {"app", "ml"} <= set(C["COLLECT_SUBMODULES"])


def test_libraries_loaded_by_path_are_bundled() -> None:
    """torchvision loads its C++ ops with torch.ops.load_library(path): binary analysis misses them."""
    assert "torchvision" in C["DYNAMIC_LIBS_OF"]
    folder = Path(importlib.util.find_spec("torchvision").origin).parent
    libs = [p for pattern in C["DYNAMIC_LIB_PATTERNS"] for p in folder.glob(pattern)]
    assert any(p.name.startswith("_C") for p in libs), "torchvision's ops library would not be collected"


def test_cuda_libraries_opened_with_dlopen_are_bundled() -> None:
    """NVRTC opens its builtins library itself; without it, CUDA kernels compiled at run time fail."""
    assert "libnvrtc-builtins.so.*" in C["CUDA_DLOPENED"]
    spec = importlib.util.find_spec("nvidia")
    folders = [Path(p) for p in (spec.submodule_search_locations if spec else None) or []]
    if any(next(f.rglob("libnvrtc.so*"), None) for f in folders):  # torch with CUDA from nvidia-* wheels
        assert any(next(f.rglob(C["CUDA_DLOPENED"][0]), None) for f in folders)


def test_listed_packages_and_modules_are_installed() -> None:
    for dist in C["METADATA"]:
        metadata.distribution(dist)  # raises PackageNotFoundError: the build would fail
    for name in [*C["HIDDEN_IMPORTS"], *C["COLLECT_SUBMODULES"]]:
        assert module_file_exists(name), f"{name} is listed in the spec but cannot be found"
    assert canonical("torch") in {canonical(n) for n in C["METADATA"]}  # torchmetrics checks its version


def test_exclusions_never_remove_what_the_app_imports() -> None:
    excludes = set(C["EXCLUDES"])
    assert "triton" in excludes  # the big one (torch.compile only)
    used = imports_of_project()
    clashes = sorted(name for name in used for ex in excludes if name == ex or name.startswith(ex + "."))
    assert clashes == []
    for kept in (
        "torch",
        "torchvision",
        "captum",
        "torchmetrics",
        "pydicom",
        "PySide6",
        "pyqtgraph",
        "matplotlib",
    ):
        assert kept not in excludes


def test_build_script_is_standard_library_only_and_finds_the_spec() -> None:
    tree = ast.parse(BUILD_SCRIPT.read_text(encoding="utf-8"))
    tops = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    tops |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert tops - set(sys.stdlib_module_names) - {"__future__"} == set()
    result = subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "--smoke-only" in result.stdout
    spec = importlib.util.spec_from_file_location("build_app", BUILD_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_app"] = module  # dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["build_app"]
    assert module.SPEC == SPEC and module.APP_NAME == C["APP_NAME"]
