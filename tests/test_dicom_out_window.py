"""The main window and our DICOM objects (issue 12): a measurement saved as a DICOM SR from the File
menu comes back on its image when the SR is opened again, and dropping the SR or our Parametric
Map while the image is shown keeps the image on screen and puts the result over it."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from app.browser.rules import first_to_show
from ml.imaging.image import ImageMeta
from ml.imaging.index import InstanceEntry


def test_results_objects_are_never_shown_first():
    sr = InstanceEntry("m.dcm", ImageMeta(kind="dicom", modality="SR", sop_class_uid="1.2.840.10008.5.1.4.1.1.88.34"),
                       is_image=False, source="m.dcm")
    pm = InstanceEntry("p.dcm", ImageMeta(kind="dicom", modality="OT", sop_class_uid="1.2.840.10008.5.1.4.1.1.30"),
                       is_image=True, source="p.dcm")
    chest = InstanceEntry("c.dcm", ImageMeta(kind="dicom", modality="CR"), is_image=True, source="c.dcm")
    assert first_to_show([pm, sr]) is None
    assert first_to_show([pm, sr, chest]) is chest


@pytest.fixture
def window(qtbot, tmp_path):
    from app.main_window import MainWindow
    from app.settings import Settings
    from app.workers import running_jobs

    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    w = MainWindow(Settings(tmp_path / "settings.ini"))
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()
    qtbot.waitUntil(lambda: running_jobs() == 0, timeout=60_000)


def test_sr_saved_from_the_window_comes_back_on_its_image(qtbot, window, dicom_dir, tmp_path):
    from ml.dicom_out.measurements import read_measurements
    from ml.dicom_out.results import Algorithm, parametric_map, read_source, write
    from ml.explain.base import Heatmap

    folder = tmp_path / "study"
    folder.mkdir()
    shutil.copy(dicom_dir / "rsna_cxr_pa.dcm", folder / "chest.dcm")
    menu_texts = [a.text() for a in window.file_actions]
    assert "Save measurements as DICOM &SR…" in menu_texts and "Save view as DICOM Secondary &Capture…" in menu_texts
    window.open_paths([folder / "chest.dcm"])
    qtbot.waitUntil(lambda: not window.indexer.busy and window.viewer.image() is not None, timeout=60_000)
    layer = window.viewer.measurement_layer()
    layer.begin("distance", (120.5, 300.5))
    layer.drag_to((620.5, 300.5))
    layer.finish()
    mm = window.viewer.measurements()[0].numbers["mm"]
    assert mm == pytest.approx(500 * 0.168)
    sr = window.dicom_objects.save_measurements(str(tmp_path / "out" / "chest_measurements.dcm"))
    assert sr is not None and read_measurements(sr)[0].numbers["mm"] == pytest.approx(mm)

    window.close_all_action.trigger()  # a new reading session: nothing remembered
    assert window.viewer.image() is None
    window.open_paths([folder])
    qtbot.waitUntil(lambda: not window.indexer.busy and window.viewer.image() is not None, timeout=60_000)
    assert window.viewer.measurements() == []
    source = read_source(folder / "chest.dcm")
    values = np.zeros((int(source.Rows), int(source.Columns)), np.float32)
    values[100:300, 100:300] = 1.0
    pm = write(parametric_map(source, Heatmap(values, "gradcam", "Pneumonia", 0.0, 1.0), Algorithm("t", "1")),
               tmp_path / "out", "chest_heatmap")
    window.open_paths([sr, pm])  # dropped onto the window while the chest is shown
    qtbot.waitUntil(lambda: not window.indexer.busy and len(window.viewer.measurements()) == 1, timeout=60_000)
    assert window.loader.current_path.endswith("chest.dcm")  # the image stays; the SR did not replace it
    assert abs(window.viewer.measurements()[0].numbers["mm"] - mm) < 0.01
    item = window.viewer.overlay_layer("Parametric map")
    assert item is not None and item.image[200, 200, 3] > 0 and item.image[500, 500, 3] == 0

    # choosing the map's (or the SR's) row in the browser shows the image it belongs to, with the map
    window.viewer.clear()
    window.loader.forget()
    assert window.browser.select_path(str(pm))
    qtbot.waitUntil(lambda: window.viewer.image() is not None, timeout=60_000)
    assert window.loader.current_path.endswith("chest.dcm")
    assert window.viewer.overlay_layer("Parametric map") is not None

    # a second viewport (View > Layout) showing the same image gets the SR measurement and the map too
    from ml.imaging.read import read_image

    window.layout_controller.set_layout("1x2")
    second = window.layout_controller.grid.viewer(1)
    second.set_image(read_image(folder / "chest.dcm"), "second viewport")
    assert len(second.measurements()) == 1 and abs(second.measurements()[0].numbers["mm"] - mm) < 0.01
    assert second.overlay_layer("Parametric map") is not None
