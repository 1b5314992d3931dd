"""The analysis panel's DICOM results in the real window (offscreen), with the default model: the
RSNA radiograph analysed and explained, its SR and Parametric Map saved into a folder (both pass
dciodvfy) and sent to a real Orthanc, where they are found in the source study."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pydicom
import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog, QInputDialog

from app.main_window import MainWindow
from app.settings import Settings
from app.workers import running_jobs
from ml.pacs.nodes import Node, save_nodes
from tests.helpers.orthanc import orthanc  # noqa: F401 - the fixture
from tests.test_dicom_out import dciodvfy_errors

WAIT_MS = 180_000
COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"
PARAMETRIC_MAP = "1.2.840.10008.5.1.4.1.1.30"


@pytest.fixture
def analysed(qtbot, tmp_path: Path, dicom_dir: Path):
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    w = MainWindow(Settings(tmp_path / "settings.ini"))
    qtbot.addWidget(w)
    w.show()
    panel = w.analysis_panel
    qtbot.waitUntil(lambda: panel.loaded is not None, timeout=WAIT_MS)  # the shipped default model
    src = dicom_dir / "rsna_cxr_pa.dcm"
    w.open_paths([str(src)])
    qtbot.waitUntil(lambda: w.viewer.image() is not None, timeout=WAIT_MS)
    panel.auto_explain.setChecked(True)
    panel.run_current()
    qtbot.waitUntil(lambda: panel.heatmap is not None and panel.heatmap.complete and not panel.busy,
                    timeout=WAIT_MS)  # fmt: skip
    yield w, panel, src
    w.close()
    qtbot.waitUntil(lambda: running_jobs() == 0, timeout=WAIT_MS)


def _wait_export(qtbot, panel) -> None:  # noqa: ANN001
    qtbot.waitUntil(lambda: not panel.dicom_export.export.busy, timeout=WAIT_MS)


def test_save_and_send_sr_and_parametric_map(qtbot, analysed, tmp_path, orthanc, monkeypatch):  # noqa: F811
    w, panel, src = analysed
    view = panel.dicom_export
    assert view.save_button.text() == "DICOM…" and view.save_button.isEnabled()
    assert view.export.unavailable() == ""
    source = pydicom.dcmread(src, stop_before_pixels=True)

    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(out))
    view.save_button.click()  # the folder the user picks
    _wait_export(qtbot, panel)
    assert "Saved 2 DICOM result object(s) (SR + Parametric Map)" in panel.status.text(), panel.status.text()
    files = sorted(out.iterdir())
    assert [f.name.rsplit(".", 2)[-2] for f in files] == ["pm", "sr"]
    for f in files:
        assert dciodvfy_errors(f) == [], f.name
        assert pydicom.dcmread(f, stop_before_pixels=True).StudyInstanceUID == source.StudyInstanceUID

    save_nodes({"Orthanc": Node("Orthanc", orthanc.aet, "127.0.0.1", orthanc.dicom_port,
                                dicomweb_url=orthanc.dicomweb_url)})  # fmt: skip
    asked = []
    monkeypatch.setattr(QInputDialog, "getItem", lambda _p, _t, _l, names, *a: (asked.append(names), ("Orthanc", True))[1])
    view.send_button.click()  # the node the user picks from the node file
    assert asked == [["Orthanc"]]
    _wait_export(qtbot, panel)
    assert panel.status.text().startswith("Sent 2 DICOM result object(s) to Orthanc"), panel.status.text()
    request = urllib.request.Request(
        f"{orthanc.rest_url}/tools/find", method="POST",
        data=json.dumps({"Level": "Instance", "Expand": True,
                         "Query": {"StudyInstanceUID": source.StudyInstanceUID}}).encode())  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as r:
        instances = json.loads(r.read())
    classes = {orthanc.rest(f"/instances/{inst['ID']}/simplified-tags").get("SOPClassUID") for inst in instances}
    assert {COMPREHENSIVE_3D_SR, PARAMETRIC_MAP} <= classes, classes

    # a result of the image shown only: another (non-DICOM) image gets the clear message
    jpeg = src.parents[1] / "cxr" / "padchest" / "16747_3_1.jpg"
    w.open_paths([str(jpeg)])
    qtbot.waitUntil(lambda: w.viewer.image() is not None and str(w.viewer.image().meta.path) == str(jpeg),
                    timeout=WAIT_MS)  # fmt: skip
    view.save_button.click()
    assert panel.status.text() == "DICOM results need a DICOM source image."
