"""Speed (issue 13): what a listing or the window's start-up must not import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_LIST_CATALOGUE = """
import contextlib, io, json, sys
from ml.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    rc = main(["models", "list", "--catalogue"])
heavy = [m for m in ("torch", "torchvision", "onnxruntime") if m in sys.modules]
print(json.dumps({"rc": rc, "heavy": heavy, "out": out.getvalue()}))
"""


def _run(code: str, tmp_path: Path) -> dict:
    env = dict(os.environ, CXR_STUDIO_HOME=str(tmp_path), PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_listing_the_catalogue_imports_neither_torch_nor_torchvision(tmp_path: Path) -> None:
    _run(_LIST_CATALOGUE, tmp_path)  # the first listing installs the shipped default model (checks it)
    got = _run(_LIST_CATALOGUE, tmp_path)
    assert got["rc"] == 0
    assert got["heavy"] == []
    assert "densenet121-imagenet" in got["out"] and "densenet121-res224-all" in got["out"]


def test_imagenet_class_names_are_stored_and_match_torchvision() -> None:
    from torchvision.models import get_model_weights

    from ml.models.catalogue import get_entry

    names = get_entry("resnet18-imagenet").label_names()
    assert len(names) == 1000 and len(set(names)) == 1000
    reference = list(get_model_weights("resnet18").DEFAULT.meta["categories"])
    assert [n.split(" (")[0] for n in names] == [r.split(" (")[0] for r in reference]
    assert names[0] == "tench"


_IMPORT_WINDOW = """
import json, sys
import app.main_window  # noqa: F401
print(json.dumps({"heavy": [m for m in ("torch", "torchvision", "captum", "onnxruntime") if m in sys.modules]}))
"""


def test_the_main_window_module_imports_no_torch(tmp_path: Path) -> None:
    # the window must not wait for torch (about 1-10 s): models load in a worker after it shows
    assert _run(_IMPORT_WINDOW, tmp_path)["heavy"] == []
