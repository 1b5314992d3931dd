"""GUI decode isolation (issue 11 item 1/2): a decoder that aborts the process, or a Rust panic
(a BaseException), ends in one readable error in the window, and the application keeps running."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ml.imaging import guarded
from ml.imaging.guarded import GuardedReader


def _decode_or_abort(path: str):  # runs in the decode worker process
    if "damaged" in Path(path).name:
        os.abort()  # what a native decoder does on some damaged data under a memory limit
    return guarded._read(path)


class _AbortingReader(GuardedReader):
    """The real guarded worker process, whose decoder aborts on files named '*damaged*'."""

    def read(self, path, keep_pixel_data=False):
        return self.run(_decode_or_abort, os.fspath(path), name=Path(path).name)


@pytest.fixture
def window(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from app.main_window import MainWindow
    from app.settings import Settings
    from app.workers import running_jobs

    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    win = MainWindow(Settings(tmp_path / "settings.ini"))
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()
    qtbot.waitUntil(lambda: running_jobs() == 0, timeout=60_000)


def test_a_decoder_abort_is_a_readable_error_and_the_app_keeps_running(window, qtbot, dicom_dir, tmp_path,
                                                                       monkeypatch):
    from app.browser import loader

    reader = _AbortingReader(timeout_s=60)
    monkeypatch.setattr(loader, "shared_reader", lambda: reader)
    damaged = shutil.copy(dicom_dir / "rsna_cxr_pa.dcm", tmp_path / "damaged.dcm")
    good = shutil.copy(dicom_dir / "emri_small_RLE.dcm", tmp_path / "good.dcm")
    pid = os.getpid()
    try:
        window.open_paths([damaged])
        qtbot.waitUntil(lambda: "decoder crashed" in window.statusBar().currentMessage(), timeout=60_000)
        assert "damaged.dcm is damaged: the decoder crashed on it." in window.statusBar().currentMessage()
        assert window.viewer.image() is None
        assert os.getpid() == pid and window.isVisible()  # still the same, running application
        window.open_paths([good])  # the next image decodes in a fresh worker
        qtbot.waitUntil(lambda: window.viewer.image() is not None, timeout=60_000)
        assert window.viewer.image().frames.shape[0] == 10
    finally:
        reader.close()


class PanicException(BaseException):  # what pyo3_runtime.PanicException looks like
    pass


def test_a_rust_panic_in_a_gui_job_is_a_readable_error(qtbot):
    from app.workers import SOMETHING_WENT_WRONG, Job

    def panics(_progress, _cancel):
        raise PanicException("called `Result::unwrap()` on an `Err` value")

    job = Job(panics, "opening the image")
    errors: list[str] = []
    job.signals.error.connect(errors.append)
    with qtbot.waitSignal(job.signals.done, timeout=10_000):
        job.start()
    assert job.state == "error"
    assert errors and errors[0].startswith(SOMETHING_WENT_WRONG) and "keeps running" in errors[0]
