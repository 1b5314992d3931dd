"""The PACS in the real window (offscreen) against a real Orthanc: the node dialog's Test and Save,
search and retrieve one study into the browser, a retrieve cancelled mid-way from the dock's Cancel
button (nothing in the cache, nothing in the browser), the receiver's pushed study in the browser."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from app.main_window import MainWindow
from app.settings import Settings
from app.workers import running_jobs
from ml.pacs.nodes import Node, load_nodes, load_receiver, save_nodes
from ml.paths import user_cache_dir
from tests.helpers.orthanc import APP_AET, _proposal
from tests.helpers.pacs_big import BIG_PATIENT_ID, big_pacs  # noqa: F401 - the fixture

WAIT_MS = 60_000
RG3_STUDY = "1.3.6.1.4.1.5962.1.2.11.20040826185059.5457"  # RG3_J2KR.dcm, 20040826


def cache() -> Path:
    return user_cache_dir() / "pacs"


@pytest.fixture
def window(qtbot, tmp_path: Path, big_pacs):  # noqa: F811
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    s = big_pacs.server
    save_nodes({"Orthanc": Node("Orthanc", s.aet, "127.0.0.1", s.dicom_port, dicomweb_url=s.dicomweb_url)})
    w = MainWindow(Settings(tmp_path / "settings.ini"))
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()
    qtbot.waitUntil(lambda: running_jobs() == 0, timeout=WAIT_MS)


def _search(qtbot, dock, **fields: str) -> None:  # noqa: ANN001
    for key, value in fields.items():
        dock.inputs[key].setText(value)
    dock.search_button.click()
    qtbot.waitUntil(lambda: dock.presenter.search_job is None, timeout=WAIT_MS)


def test_search_and_retrieve_one_study_into_the_browser(qtbot, window):
    assert [a.text() for a in window.pacs_menu.actions()] == ["&Query/Retrieve…", "&Nodes…"]
    window.pacs_query_action.trigger()
    dock = window.pacs.query
    assert window.pacs.dock.isVisible() and dock.node.currentText() == "Orthanc"
    assert [dock.method.itemText(i) for i in range(dock.method.count())] == ["C-GET", "WADO-RS"]
    dock.search_button.click()  # no criteria: refused with the rule, nothing asked
    assert "at least one search criterion" in dock.message.text() and dock.presenter.search_job is None
    _search(qtbot, dock, date_from="2004-01-01", date_to="2004-12-31")
    assert dock.tree.topLevelItemCount() == 1, dock.message.text()
    item = dock.tree.topLevelItem(0)
    assert item.text(2) == "2004-08-26" and dock.message.text() == "1 study found."
    item.setExpanded(True)  # the series level, asked on expand
    qtbot.waitUntil(lambda: item.childCount() == 1 and item.child(0).text(0).startswith("Series"), timeout=WAIT_MS)
    item.child(0).setSelected(True)  # a selected series stands for its study
    dock.retrieve_button.click()
    qtbot.waitUntil(lambda: dock.presenter.retrieve_job is None, timeout=WAIT_MS)
    assert dock.message.text().startswith("Retrieved 1 study"), dock.message.text()
    files = list((cache() / RG3_STUDY).glob("*.dcm"))
    assert len(files) == 1
    qtbot.waitUntil(lambda: len(window.browser.index) == 1, timeout=WAIT_MS)  # opened like a dropped folder
    assert [e.path for e in window.browser.index.instances()] == [str(files[0])]
    qtbot.waitUntil(lambda: window.viewer.image() is not None, timeout=WAIT_MS)  # and shown, like a drop
    assert window.loader.current_path == str(files[0])


def test_cancel_mid_retrieve_leaves_nothing(qtbot, window, big_pacs):  # noqa: F811
    dock = window.pacs.show_query()
    _search(qtbot, dock, patient_id=BIG_PATIENT_ID)
    assert dock.tree.topLevelItemCount() == 1 and dock.tree.topLevelItem(0).text(6) == str(big_pacs.big_instances)
    dock.tree.topLevelItem(0).setSelected(True)
    seen: list[int] = []

    def on_progress(done: int, total: int, _message: str) -> None:
        seen.append(done)
        if done >= 1 and dock.progress.cancel_button.isEnabled():
            dock.progress.cancel_button.click()  # the user presses Cancel mid-way

    assert dock.retrieve_selected()
    job = dock.presenter.retrieve_job
    job.signals.progress.connect(on_progress)
    qtbot.waitUntil(lambda: job.is_done, timeout=WAIT_MS)
    assert job.state == "cancelled" and 1 <= max(seen) < big_pacs.big_instances
    assert "nothing of the unfinished study was kept" in dock.message.text()
    assert not cache().exists() or list(cache().iterdir()) == []  # no study, no staging folder
    qtbot.wait(300)
    assert len(window.browser.index) == 0 and window.indexer is not None  # the browser got nothing


def test_node_dialog_test_save_and_the_receiver(qtbot, window, big_pacs, dicom_dir):  # noqa: F811
    dialog = window.pacs.show_nodes()
    assert dialog.list.count() == 1 and dialog.fields["ae_title"].text() == big_pacs.server.aet
    dialog.test_button.click()  # C-ECHO and a QIDO-RS request, in the background
    qtbot.waitUntil(lambda: dialog.presenter.test_job is None and "QIDO-RS" in dialog.message.text(), timeout=WAIT_MS)
    assert "C-ECHO: OK" in dialog.message.text() and "QIDO-RS: OK" in dialog.message.text()
    dialog.add_button.click()
    assert dialog.list.count() == 2 and not dialog.save_button.isEnabled()  # the new node is empty
    assert "DICOMweb URL" in dialog.problems.text()
    dialog.remove_button.click()
    qtbot.keyClicks(dialog.fields["port"], "x")  # "4242x"
    assert "must be a number" in dialog.problems.text() and not dialog.save_button.isEnabled()
    dialog.fields["port"].backspace()
    dialog.fields["port"].textEdited.emit(dialog.fields["port"].text())
    dialog.receiver_enabled.setChecked(True)
    dialog.receiver_port.setText(str(big_pacs.server.app_port))
    dialog.receiver_port.textEdited.emit(dialog.receiver_port.text())
    dialog.receiver_aet.setText(APP_AET)
    dialog.receiver_aet.textEdited.emit(APP_AET)
    assert dialog.save_button.isEnabled()
    dialog.save_button.click()
    assert load_receiver().enabled and load_nodes()["Orthanc"].port == big_pacs.server.dicom_port
    assert window.pacs.session.receiver_running, dialog.message.text()
    assert "listening on port" in dialog.receiver_status.text()
    dock = window.pacs.show_query()
    assert [dock.method.itemText(i) for i in range(dock.method.count())] == ["C-GET", "C-MOVE to our receiver", "WADO-RS"]
    _search(qtbot, dock, date_from="20040826", date_to="20040826")  # retrieve by C-MOVE to our receiver
    dock.method.setCurrentIndex(1)
    dock.tree.topLevelItem(0).setSelected(True)
    assert dock.retrieve_selected()
    qtbot.waitUntil(lambda: dock.presenter.retrieve_job is None, timeout=WAIT_MS)
    assert dock.message.text().startswith("Retrieved 1 study"), dock.message.text()
    moved = list((cache() / RG3_STUDY).glob("*.dcm"))
    qtbot.waitUntil(lambda: len(window.browser.index) == 1, timeout=WAIT_MS)
    assert len(moved) == 1 and [e.path for e in window.browser.index.instances()] == [str(moved[0])]
    qtbot.waitUntil(lambda: window.viewer.image() is not None, timeout=WAIT_MS)
    # a study pushed to us (dcmtk's storescu) appears in the browser
    pushed = dicom_dir / "rsna_cxr_pa.dcm"
    done = subprocess.run([shutil.which("storescu") or "storescu", *_proposal(pushed), "-aec", APP_AET,
                           "127.0.0.1", str(big_pacs.server.app_port), str(pushed)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    qtbot.waitUntil(lambda: len(window.browser.index) == 2, timeout=WAIT_MS)
    pushed_in = [e.path for e in window.browser.index.instances() if "1.2.276.0.7230010" in e.path]
    assert len(pushed_in) == 1 and pushed_in[0].startswith(str(cache()))
