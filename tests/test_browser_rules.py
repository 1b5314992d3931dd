"""Opening a folder shows its first radiograph, not the first file (a photograph) (issue 10 item 8)."""

from __future__ import annotations

from app.browser.rules import first_to_show, is_radiograph
from ml.imaging.image import ImageMeta
from ml.imaging.index import InstanceEntry


def entry(name: str, kind: str = "dicom", modality: str = "", image: bool = True) -> InstanceEntry:
    return InstanceEntry(path=name, meta=ImageMeta(path=name, kind=kind, modality=modality), is_image=image,
                         source=name)


def test_a_radiograph_wins_over_a_photograph_and_other_dicom():
    entries = [entry("a_photo.jpg", "jpeg"), entry("b_sr.dcm", "dicom", "SR", image=False),
               entry("c_mr.dcm", "dicom", "MR"), entry("d_chest.dcm", "dicom", "DX"), entry("e_cr.dcm", "dicom", "CR")]
    assert first_to_show(entries).path == "d_chest.dcm"
    assert first_to_show(entries[:3]).path == "c_mr.dcm"
    assert first_to_show(entries[:2]).path == "a_photo.jpg"
    assert first_to_show(entries[1:2]).path == "b_sr.dcm"  # nothing else: the header at least
    assert first_to_show([]) is None


def test_radiograph_modalities():
    assert is_radiograph(ImageMeta(kind="dicom", modality="cr"))
    assert not is_radiograph(ImageMeta(kind="png", modality="DX"))
    assert not is_radiograph(ImageMeta(kind="dicom", modality="CT"))


def test_opening_a_folder_shows_its_radiograph_not_the_photograph(qtbot, tmp_path, shared_data):
    import shutil

    import numpy as np
    from PIL import Image
    from PySide6.QtCore import QSettings

    from app.main_window import MainWindow
    from app.settings import Settings
    from app.workers import running_jobs

    folder = tmp_path / "visit"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(folder / "a_holiday.jpg")
    shutil.copy(shared_data / "dicom" / "SC_rgb.dcm", folder / "b_screen_capture.dcm")
    shutil.copy(shared_data / "dicom" / "rsna_cxr_pa.dcm", folder / "c_chest.dcm")
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    window = MainWindow(Settings(tmp_path / "settings.ini"))
    qtbot.addWidget(window)
    window.show()
    try:
        window.open_paths([folder])
        qtbot.waitUntil(lambda: not window.indexer.busy and window.viewer.image() is not None, timeout=60_000)
        assert window.viewer.image().meta.modality == "CR"
        assert window.loader.current_path.endswith("c_chest.dcm")
    finally:
        window.close()
        qtbot.waitUntil(lambda: running_jobs() == 0, timeout=60_000)
