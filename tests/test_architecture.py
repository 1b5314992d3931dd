"""The dependency runs app -> ml only: ml never imports Qt, pyqtgraph or app (import-linter)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_import_linter_contract_holds() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    res = subprocess.run([str(lint), "--config", str(REPO / "pyproject.toml")], cwd=REPO,
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "KEPT" in res.stdout


def test_no_gui_import_anywhere_in_ml() -> None:
    offenders = []
    for path in (REPO / "ml").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("PySide6", "pyqtgraph", "app")]
    assert not offenders


def test_no_unrestricted_torch_load() -> None:
    """Model files from outside are never unpickled without weights_only=True."""
    for path in list((REPO / "ml").rglob("*.py")) + list((REPO / "app").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "load" and \
                    getattr(getattr(node.func, "value", None), "id", "") == "torch":
                kw = {k.arg: k.value for k in node.keywords}
                assert "weights_only" in kw and getattr(kw["weights_only"], "value", None) is True, \
                    f"{path.relative_to(REPO)}:{node.lineno} torch.load without weights_only=True"


def test_ruff_lint_is_clean() -> None:
    """The lint rules in pyproject.toml hold for the whole tree (unused imports, bugbear, ...)."""
    ruff = Path(sys.executable).with_name("ruff")
    res = subprocess.run([str(ruff), "check", "--no-cache", str(REPO)], cwd=REPO, capture_output=True,
                         text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stdout[-3000:]


# ------------------------------------------------------------------ import cycles (grimp)

def _import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports (also inside functions and TYPE_CHECKING blocks)."""
    import grimp

    graph = grimp.build_graph("app", "ml", include_external_packages=False, cache_dir=None)
    modules = set(graph.modules)
    return {m: set(graph.find_modules_directly_imported_by(m)) & modules for m in modules}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _package_of(module: str) -> str:
    """ml.imaging.read -> ml.imaging; ml.cli -> ml.cli (a top-level module is its own room)."""
    parts = module.split(".")
    if len(parts) > 2:
        return ".".join(parts[:2])
    return module


def test_cycle_finder_finds_a_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(edges) == [["a", "b", "c"]]


def test_no_import_cycles_between_modules() -> None:
    cycles = _cycles(_import_graph())
    assert not cycles, f"import cycles in app/ or ml/ (break them, e.g. move the shared part down): {cycles}"


def test_no_import_cycles_between_packages() -> None:
    """ml.imaging, ml.models, app.viewer, app.analysis, ...: the arrows between rooms go one way."""
    modules = _import_graph()
    rooms: dict[str, set[str]] = {}
    for module, imported in modules.items():
        room = _package_of(module)
        rooms.setdefault(room, set()).update(_package_of(m) for m in imported)
    for room, targets in rooms.items():
        targets.discard(room)
    assert not _cycles(rooms), f"packages that import each other: {_cycles(rooms)}"


# ------------------------------------------------------------------ module size

MAX_LINES = 400
# Modules over MAX_LINES today, with their size when this check was added: they may only shrink
# (the coordinator tightens the list when the split lands). Do not add to it.
LARGE_MODULES: dict[str, int] = {}


def test_no_module_over_400_lines() -> None:
    too_big = []
    for path in sorted([*(REPO / "app").rglob("*.py"), *(REPO / "ml").rglob("*.py")]):
        rel = path.relative_to(REPO).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        limit = max(MAX_LINES, LARGE_MODULES.get(rel, 0))
        if lines > limit:
            too_big.append(f"{rel}: {lines} lines (limit {limit})")
    assert not too_big, "split these modules (one responsibility each): " + "; ".join(too_big)


# ------------------------------------------------------------------ type checker

def test_type_checker_passes_on_ml() -> None:
    """mypy over ml/ with the [tool.mypy] settings of pyproject.toml (cache in the user cache
    folder: the first run on a machine takes a minute, later ones seconds)."""
    from ml.paths import platform_cache_dir

    mypy = Path(sys.executable).with_name("mypy")
    cache = platform_cache_dir() / "mypy"
    res = subprocess.run([str(mypy), "--config-file", str(REPO / "pyproject.toml"), "--cache-dir", str(cache)],
                         cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    checked = int(res.stdout.split(" in ")[-1].split()[0])  # "Success: no issues found in 62 source files"
    assert checked >= len(list((REPO / "ml").rglob("*.py"))) - 2  # it ran over ml/, not nothing
