"""The study browser filled through the real indexing path (the indexing worker, in batches).

Issue 10 item 1: opening ../shared/data/dicom said "13 patients, 14 studies, 20 files" while the
tree showed one patient, and a PNG opened afterwards never got a row (rows were inserted at their
sorted position in the whole index, past the end of the rows shown so far, which Qt ignores).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from app.browser import BrowserPanel, IndexController
from app.main_window import MainWindow
from app.settings import Settings
from app.workers import running_jobs

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def data() -> Path:
    if not (DATA / "dicom" / "rsna_cxr_pa.dcm").is_file():
        pytest.fail(f"shared test data missing at {DATA}")
    return DATA


def _top_level(panel: BrowserPanel) -> list[str]:
    return [panel.tree.topLevelItem(i).text(0) for i in range(panel.tree.topLevelItemCount())]


def _open_with_controller(qtbot, panel: BrowserPanel, indexer: IndexController, paths: list[Path]) -> None:
    """Wire the indexer to the panel as the main window does and wait until it is done."""
    indexer.open([str(p) for p in paths])
    qtbot.waitUntil(lambda: not indexer.busy, timeout=WAIT_MS)


@pytest.fixture
def panel(qtbot):
    p = BrowserPanel()
    qtbot.addWidget(p)
    yield p
    p.thumbnails.clear()  # thumbnails still queued or running end before the panel goes
    qtbot.waitUntil(lambda: p.thumbnails.pending() == 0 and running_jobs() == 0, timeout=WAIT_MS)


@pytest.mark.parametrize("batch_size", [3, 50])
def test_every_patient_of_the_dicom_folder_gets_a_row_then_a_png_too(qtbot, data, panel, batch_size):
    indexer = IndexController(batch_size=batch_size)
    batches: list[int] = []
    indexer.batch.connect(lambda _rid, entries: (batches.append(len(entries)), panel.add_instances(entries)))
    indexer.finished.connect(
        lambda _rid, index: (panel.add_instances(list(index.instances())), panel.add_errors(index.errors))
    )
    _open_with_controller(qtbot, panel, indexer, [data / "dicom"])
    assert len(batches) >= (2 if batch_size == 3 else 1) and max(batches) > 1  # delivered in batches
    assert panel.caption.text().startswith("13 patients, 14 studies, 20 files")
    rows = _top_level(panel)
    assert len(rows) == 13
    assert len(set(rows)) == 13
    # every patient of the index is a top-level row, in the index's display order
    n_studies = sum(panel.tree.topLevelItem(i).childCount() for i in range(panel.tree.topLevelItemCount()))
    assert n_studies == 14
    assert len(panel.row_texts()) >= 13 + 14 + 20 - 2  # patients, studies, series (+ instances)

    png = data / "cxr" / "nih" / "00000001_000.png"
    _open_with_controller(qtbot, panel, indexer, [png])
    assert _top_level(panel) == rows  # the PNG joins the "(no patient)" row, which sorts last
    last = panel.tree.topLevelItem(12)
    assert last.text(0) == "(no patient)" and last.childCount() == 2 + 1  # a new study row: its folder
    assert last.child(last.childCount() - 1).text(0) == "Folder nih"
    assert panel.caption.text().startswith("13 patients, 15 studies, 21 files")
    assert panel.select_path(str(png))
    assert panel.current_entry().path == str(png)


def test_main_window_lists_all_13_patients_and_a_later_png(qtbot, data, tmp_path):
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    window = MainWindow(Settings(tmp_path / "settings.ini"))
    qtbot.addWidget(window)
    window.show()
    try:
        window.open_paths([data / "dicom"])
        qtbot.waitUntil(lambda: not window.indexer.busy, timeout=WAIT_MS)
        assert window.browser.caption.text().startswith("13 patients, 14 studies, 20 files")
        assert window.browser.tree.topLevelItemCount() == 13
        window.open_paths([data / "cxr" / "nih" / "00000001_000.png"])
        qtbot.waitUntil(lambda: not window.indexer.busy, timeout=WAIT_MS)
        assert window.browser.tree.topLevelItemCount() == 13  # the PNG joins "(no patient)"
        assert any("00000001_000" in r for r in window.browser.row_texts())
    finally:
        window.close()
        qtbot.waitUntil(lambda: running_jobs() == 0, timeout=WAIT_MS)
