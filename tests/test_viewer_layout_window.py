"""Compare with prior in the main window: View > Layout > Compare with prior hangs the current
chest film left and the patient's most recent prior right, dated, with orientation markers."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid
from PySide6.QtCore import QSettings

from app.main_window import MainWindow
from app.settings import Settings
from app.workers import running_jobs

WAIT_MS = 60_000


def write_studies(source: Path, folder: Path) -> dict[str, Path]:
    """Three copies of one PA film of one patient: studies of 2022-05-10, 2023-01-10 and 2024-03-01."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for date in ("20220510", "20230110", "20240301"):
        ds = pydicom.dcmread(source)
        ds.PatientID = "CMP-0001"
        ds.PatientName = "Compare^Prior"
        ds.StudyDate = date
        ds.StudyInstanceUID = generate_uid()
        ds.SeriesInstanceUID = generate_uid()
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.PatientOrientation = ["L", "F"]
        ds.ViewPosition = "PA"
        out[date] = folder / f"cxr_{date}.dcm"
        ds.save_as(out[date])
    return out


@pytest.fixture
def window(qtbot, tmp_path):
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    w = MainWindow(Settings(tmp_path / "settings.ini"))
    qtbot.addWidget(w)
    w.resize(1400, 800)
    w.show()
    yield w
    w.close()
    qtbot.waitUntil(lambda: running_jobs() == 0, timeout=WAIT_MS)


def test_compare_with_prior_hangs_current_left_and_prior_right(qtbot, window, tmp_path, shared_data):
    files = write_studies(shared_data / "dicom" / "rsna_cxr_pa.dcm", tmp_path / "patient")
    window.open_paths([tmp_path / "patient"])
    qtbot.waitUntil(lambda: not window.indexer.busy and window.viewer.image() is not None, timeout=WAIT_MS)
    assert window.browser.select_path(str(files["20240301"]))
    qtbot.waitUntil(lambda: window.viewer.image() is not None
                    and window.viewer.image().meta.study_date == "20240301", timeout=WAIT_MS)
    menu = window.findChild(type(window.menuBar().actions()[0].menu()), "layoutMenu")
    assert menu is not None and window.layout_controller.compare_action in menu.actions()
    window.layout_controller.compare_action.trigger()
    grid = window.layout_controller.grid
    qtbot.waitUntil(lambda: len(grid.viewers()) == 2 and grid.viewer(1).image() is not None, timeout=WAIT_MS)
    left, right = grid.viewers()
    assert left is window.viewer
    assert right.image().meta.study_date == "20230110"  # the most recent prior, not 2022
    assert left.corner_text()["tr"][:2] == ["Current 2024-03-01", "2024-03-01"]
    assert right.corner_text()["tr"][0] == "Prior 2023-01-10"
    for v in (left, right):
        assert v.corner_text()["left"] == ["R"] and v.corner_text()["right"] == ["L"]
    window.layout_controller.sync_actions["window"].trigger()  # View > Layout > Sync window/level
    left.set_window(1500, 800)
    assert (right.window().center, right.window().width) == (1500, 800)
    # selecting the older study re-hangs it with its own prior
    window.browser.select_path(str(files["20230110"]))
    qtbot.waitUntil(lambda: grid.viewer(1).image() is not None
                    and grid.viewer(1).image().meta.study_date == "20220510", timeout=WAIT_MS)
    window.layout_controller.compare_action.trigger()  # off: one viewport again
    assert len(grid.viewers()) == 1
