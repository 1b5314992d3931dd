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
