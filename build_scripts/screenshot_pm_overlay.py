"""Screenshot: a Parametric Map re-opened from a real Orthanc as the heatmap overlay (issue 12).
Run from the repository root: QT_QPA_PLATFORM=offscreen .venv/bin/python build_scripts/screenshot_pm_overlay.py OUT.png
(predict with --dicom-out --send to a seeded local Orthanc, retrieve the study back, open it in the window)"""
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, ".")
from tests.helpers.orthanc import start_seeded  # noqa: E402


def main() -> None:
    out_png = Path(sys.argv[1])
    root = Path(tempfile.mkdtemp())
    dicom_dir = Path("../shared/data/dicom").resolve()
    server = start_seeded(root / "orthanc", dicom_dir)
    try:
        from ml.cli import main as cxr
        src = dicom_dir / "rsna_cxr_pa.dcm"
        assert cxr(["predict", str(src), "--model", "resources/models/cxr-default-pneumonia.safetensors",
                    "--explain", "gradcam", "-o", str(root / "p.csv"), "--dicom-out", str(root / "results"),
                    "--send", server.dicom_url]) == 0
        import pydicom

        from ml.pacs import parse_url, retrieve
        study = str(pydicom.dcmread(src, stop_before_pixels=True).StudyInstanceUID)
        folder = retrieve(parse_url(server.dicom_url), study, root / "back")  # source, SR and PM from the PACS
        print("retrieved:", sorted(p.name for p in folder.glob("*.dcm")))
        from PySide6.QtCore import QSettings
        from PySide6.QtWidgets import QApplication
        app = QApplication.instance() or QApplication([])
        for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
            QSettings.setPath(fmt, QSettings.Scope.UserScope, str(root / "qs"))
        from app.main_window import MainWindow
        from app.settings import Settings
        w = MainWindow(Settings(root / "settings.ini"))
        w.resize(1400, 900)
        w.show()
        w.open_paths([folder])
        import time
        t0 = time.time()
        while time.time() - t0 < 60:
            app.processEvents()
            if not w.indexer.busy and w.viewer.image() is not None and w.viewer.overlay_layer("Parametric map") is not None:
                break
            time.sleep(0.05)
        for _ in range(50):
            app.processEvents()
            time.sleep(0.02)
        assert w.viewer.overlay_layer("Parametric map") is not None, "no overlay"
        w.grab().save(str(out_png))
        print("saved", out_png)
        w.close()
        from app.workers import shutdown_jobs
        shutdown_jobs()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
