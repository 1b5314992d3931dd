"""Screenshot of compare-with-prior (1x2, orientation markers, a heatmap legend) for the README.

Usage::

    Xvfb :92 -screen 0 1600x1000x24 &  DISPLAY=:92 .venv/bin/python build_scripts/screenshot_compare_prior.py OUT.png

Writes three copies of ../shared/data/dicom/rsna_cxr_pa.dcm into a temporary folder as studies of
one patient (2022-05-10, 2023-01-10, 2024-03-01; Patient Orientation L\\F, ViewPosition PA; the
shared file is never modified), opens the folder in the real window, shows the 2024 study, turns on
View > Layout > Compare with prior, lays a smooth demonstration heatmap (not a model output) over
the current image so its colour-scale legend shows, and saves ``window.grab()``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def wait(app, until, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not until():
        if time.monotonic() > end:
            raise TimeoutError("the window did not get there in time")
        app.processEvents()
        time.sleep(0.02)


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "resources/screenshots/compare_prior.png")
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from app.__main__ import create_application
    from app.analysis.heatmap import HeatmapLayer
    from app.main_window import MainWindow
    from app.settings import Settings
    from tests.test_viewer_layout_window import write_studies

    tmp = Path(tempfile.mkdtemp(prefix="cxr-compare-"))
    os.environ["CXR_STUDIO_HOME"] = str(tmp / "home")
    files = write_studies(REPO.parent / "shared" / "data" / "dicom" / "rsna_cxr_pa.dcm", tmp / "patient")
    app, _ = create_application([])
    window = MainWindow(Settings(tmp / "settings.ini"))
    window.resize(1560, 940)
    window.show()
    window.open_paths([tmp / "patient"])
    wait(app, lambda: not window.indexer.busy and window.viewer.image() is not None)
    window.browser.select_path(str(files["20240301"]))
    wait(app, lambda: window.viewer.image() is not None and window.viewer.image().meta.study_date == "20240301")
    window.layout_controller.compare_action.trigger()
    grid = window.layout_controller.grid
    wait(app, lambda: len(grid.viewers()) == 2 and grid.viewer(1).image() is not None)

    rows, cols = window.viewer.image().shape
    yy, xx = np.mgrid[0:rows, 0:cols]
    values = np.exp(-(((xx - 0.68 * cols) / (0.12 * cols)) ** 2 + ((yy - 0.62 * rows) / (0.14 * rows)) ** 2))

    class DemoHeatmap:  # the shape of ml.explain.Heatmap that the layer uses
        method = "Demo heatmap"
        target_label = ""

    DemoHeatmap.values = values.astype(np.float32)
    HeatmapLayer(window.viewer).set_heatmap(DemoHeatmap())
    for _ in range(30):
        app.processEvents()
        time.sleep(0.03)
    out.parent.mkdir(parents=True, exist_ok=True)
    ok = window.grab().save(str(out))
    print(f"{'wrote' if ok else 'could not write'} {out} ({window.width()}x{window.height()})")
    window.close()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
