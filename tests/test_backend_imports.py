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
    env = dict(os.environ, CXR_STUDIO_HOME=str(tmp_path), PYTHONPATH=str(REPO), QT_QPA_PLATFORM="offscreen")
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


HEAVY = ("torch", "torchvision", "captum", "onnxruntime", "pydicom", "pynetdicom", "highdicom")

_IMPORT_WINDOW = f"""
import json, sys
import app.main_window  # noqa: F401
print(json.dumps({{"heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


def test_the_main_window_module_imports_no_torch_and_no_pydicom(tmp_path: Path) -> None:
    # the window must not wait for torch (about 1-10 s) nor pydicom with its codec plugins (0.3 s):
    # models load in a worker after it shows, pydicom with the first file opened
    assert _run(_IMPORT_WINDOW, tmp_path)["heavy"] == []


# The start-up path itself (app.__main__.main): QApplication, logging, the window, show(); the
# event loop is replaced by a probe of what has been imported by the time it would start.
_START_APP = f"""
import json, os, sys
from PySide6.QtWidgets import QApplication
seen = {{}}
def probe(self):
    seen["heavy"] = [m for m in {HEAVY!r} if m in sys.modules]
    seen["visible"] = [w.windowTitle() for w in QApplication.topLevelWidgets() if w.isVisible()]
    return 0
QApplication.exec = probe
from app.__main__ import main
rc = main(["--settings", os.path.join(os.environ["CXR_STUDIO_HOME"], "settings.ini")])
print(json.dumps({{"rc": rc, **seen}}))
"""


def test_the_window_is_shown_before_torch_or_pydicom_is_imported(tmp_path: Path) -> None:
    got = _run(_START_APP, tmp_path)
    assert got["rc"] == 0
    assert "CXR Studio" in got["visible"]
    assert got["heavy"] == []


_REGISTER_SUBCOMMANDS = f"""
import json, sys
from ml.cli import build_parser
build_parser()  # every subcommand registered: info, render, models, predict, train, calibrate, pacs
from ml.cli_pacs import DEFAULT_AET
print(json.dumps({{"heavy": [m for m in {HEAVY!r} if m in sys.modules], "aet": DEFAULT_AET}}))
"""


def test_registering_the_cli_subcommands_imports_nothing_heavy(tmp_path: Path) -> None:
    got = _run(_REGISTER_SUBCOMMANDS, tmp_path)
    assert got["heavy"] == []
    from ml.pacs import DEFAULT_AET

    assert got["aet"] == DEFAULT_AET  # the --aet default the CLI shows is the one ml.pacs uses


_QUIET_BEFORE_IMPORT = """
import io, json, logging, sys
from ml.imaging.pydicom_logs import quiet_pydicom
out = io.StringIO()
handler = logging.StreamHandler(out)
logging.getLogger().addHandler(handler)
quiet_pydicom(logging.ERROR, [handler])
assert "pydicom" not in sys.modules
import pydicom  # its import sets the "pydicom" logger's level back to WARNING
pydicom.config.logger.warning("Invalid value for VR PN: Doe^John")
logging.getLogger("pydicom.pixels.utils").warning("child logger: Roe^Jane")
logging.getLogger("pydicom").error("kept: an error")
logging.getLogger("ml").warning("kept: ours")
print(json.dumps({"log": out.getvalue()}))
"""


def test_pydicom_warnings_stay_out_of_the_log_when_pydicom_is_imported_later(tmp_path: Path) -> None:
    log = _run(_QUIET_BEFORE_IMPORT, tmp_path)["log"]
    assert "Doe^John" not in log and "Roe^Jane" not in log
    assert "kept: an error" in log and "kept: ours" in log
