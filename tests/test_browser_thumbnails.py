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
