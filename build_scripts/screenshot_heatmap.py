"""Screenshot of the heatmap panel (issue 14): a kermany-val pneumonia radiograph, the shipped default
model, Grad-CAM with outlines, its faithfulness score and the randomisation check. Runs app.exec()
with a QTimer state machine (QTest.qWait starves the worker pool). ``CXR_SHOT_GATED=1``: then explains
NORMAL (below the operating point: hidden, "Show anyway" offered); ``CXR_SHOT_REPORT=FILE.png``: also
writes the PNG and PDF report.

    Xvfb :91 -screen 0 1600x1000x24 &  DISPLAY=:91 .venv/bin/python build_scripts/screenshot_heatmap.py OUT.png [IMAGE]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
IMAGE = REPO.parent / "shared/data/cxr/kermany-val/PNEUMONIA/person1952_bacteria_4883.jpeg"


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "resources/screenshots/heatmap_panel.png")
    image = Path(argv[1]) if len(argv) > 1 else IMAGE
    tmp = Path(tempfile.mkdtemp(prefix="cxr-heatmap-"))
    os.environ["CXR_STUDIO_HOME"] = str(tmp / "home")
    from PySide6.QtCore import QSettings, QTimer

    from app.__main__ import create_application
    from app.main_window import MainWindow
    from app.settings import Settings

    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(tmp / "qsettings"))
    app, _ = create_application([])
    window = MainWindow(Settings(tmp / "settings.ini"))
    window.resize(1560, 960)
    window.show()
    panel = window.analysis_panel
    box = panel.ui.evidence
    start = time.monotonic()
    steps = []
    log = []

    def step(name, until, then):
        steps.append((name, until, then))

    step("model loaded", lambda: panel.loaded is not None, lambda: window.open_paths([image]))
    step("image shown", lambda: window.viewer.image() is not None, lambda: (panel.auto_explain.setChecked(True),
                                                                           panel.run_current()))
    step("heatmap", lambda: panel.heatmap is not None and panel.heatmap.complete and not panel.busy,
         lambda: (box.contours.setChecked(True), box.faith_button.click()))
    step("faithfulness", lambda: bool(box.faithfulness.text()) and not panel.busy, lambda: box.sanity_button.click())
    step("sanity", lambda: bool(box.sanity.text()) and not panel.busy, lambda: None)
    if os.environ.get("CXR_SHOT_GATED"):
        c = panel.controls
        step("gated explain", lambda: True, lambda: (c.target.setCurrentIndex(c.target.findData("NORMAL")),
                                                      panel.explain()))
        step("gated map", lambda: panel.heatmap is not None and panel.heatmap.target_label == "NORMAL"
             and not panel.busy, lambda: None)
    step("settle", lambda: time.monotonic() - start > 0, lambda: None)

    def tick() -> None:
        if time.monotonic() - start > 300:
            print("TIMEOUT at", steps[0][0] if steps else "?", file=sys.stderr)
            app.exit(3)
            return
        if not steps:
            pix = window.grab()
            out.parent.mkdir(parents=True, exist_ok=True)
            pix.save(str(out))
            print("saved", out, pix.width(), pix.height())
            if os.environ.get("CXR_SHOT_REPORT"):
                panel.export_png(os.environ["CXR_SHOT_REPORT"])
                panel.export_pdf(os.environ["CXR_SHOT_REPORT"][:-4] + ".pdf")
            print("status:", panel.ui.status.text())
            print("method:", box.method.text())
            print("contours:", box.contour_text.text())
            print("faithfulness:", box.faithfulness.text())
            print("sanity:", box.sanity.text())
            print("gate:", box.gate.text(), "| show anyway offered:", not box.show_anyway.isHidden())
            print("report lines:", panel.report_data().evidence)
            app.exit(0)
            return
        name, until, then = steps[0]
        if until():
            steps.pop(0)
            log.append((name, round(time.monotonic() - start, 1)))
            print("step", name, log[-1][1], flush=True)
            then()
            if name in ("sanity", "gated map"):
                QTimer.singleShot(800, tick)  # let the layout settle
                return
        QTimer.singleShot(100, tick)

    QTimer.singleShot(100, tick)
    code = app.exec()
    window.close()
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
