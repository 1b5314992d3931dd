"""Thumbnails are made in the background; a browser closed while they are made must not crash the app."""

from __future__ import annotations

import shiboken6
from PySide6.QtCore import QThreadPool

from app.browser.thumbnails import ThumbnailLoader


def test_jobs_that_end_after_the_loader_is_gone_are_ignored(qtbot, tmp_path, dicom_dir) -> None:
    """A thumbnail (and a failing one) finishing after its loader was deleted raises nothing in the
    event loop (it used to: "Signal source has been deleted", seen when a viewport grid closed)."""
    pool = QThreadPool()
    pool.setMaxThreadCount(1)
    loader = ThumbnailLoader(size=32, pool=pool)
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"DICM" * 10)
    loader.request(str(dicom_dir / "rsna_cxr_pa.dcm"))
    loader.request(str(broken))
    shiboken6.delete(loader)  # the browser goes away while both jobs run
    assert pool.waitForDone(60_000)
    qtbot.wait(200)  # deliver the queued finished/error/done signals: pytest-qt fails on any exception


def test_a_thumbnail_arrives_for_a_real_radiograph(qtbot, dicom_dir) -> None:
    loader = ThumbnailLoader(size=32)
    with qtbot.waitSignal(loader.ready, timeout=60_000) as blocker:
        loader.request(str(dicom_dir / "rsna_cxr_pa.dcm"))
    path, icon = blocker.args
    assert path.endswith("rsna_cxr_pa.dcm") and not icon.isNull()


def _thumbnail_or_abort(path: str, size: int):  # runs in the thumbnails' decode worker process
    import os as _os

    from ml.imaging.thumbnail import thumbnail_pixels

    if "damaged" in _os.path.basename(path):
        _os.abort()  # what a native decoder may do on damaged data
    return thumbnail_pixels(path, size)


def test_a_decoder_crash_while_making_a_thumbnail_leaves_the_app_running(qtbot, tmp_path, dicom_dir,
                                                                         monkeypatch) -> None:
    """Thumbnails decode in a guarded worker process: a decoder abort there is one readable failure,
    this process lives on, and the next thumbnail is made by a fresh worker."""
    import os
    import shutil

    from app.browser import thumbnails

    monkeypatch.setattr(thumbnails, "thumbnail_pixels", _thumbnail_or_abort)
    damaged = shutil.copy(dicom_dir / "rsna_cxr_pa.dcm", tmp_path / "damaged.dcm")
    loader = ThumbnailLoader(size=32)
    pid = os.getpid()
    with qtbot.waitSignal(loader.failed, timeout=60_000) as failed:
        loader.request(str(damaged))
    assert "damaged.dcm" in failed.args[1] and "crash" in failed.args[1]
    assert os.getpid() == pid
    with qtbot.waitSignal(loader.ready, timeout=60_000) as ready:
        loader.request(str(dicom_dir / "rsna_cxr_pa.dcm"))
    assert not ready.args[1].isNull()
