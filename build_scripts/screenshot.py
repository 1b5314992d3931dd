"""Screenshot of the main window with files open (for the README).

Usage::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python build_scripts/screenshot.py OUT.png PATH...
        [--model NAME]   also classify the image with an installed model and show its Grad-CAM

Builds the real window (style sheet included) with throw-away settings, opens PATH... as the
command line would, waits until indexing, decoding and thumbnails are done, and saves
``window.grab()`` to OUT.png. Without a display it falls back to Qt's offscreen platform.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 2
    model = None
    if "--model" in argv:
        i = argv.index("--model")
        model, argv = argv[i + 1], argv[:i] + argv[i + 2:]
    out, paths = Path(argv[0]), argv[1:]
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6.QtTest import QTest

    from app.__main__ import create_application
    from app.main_window import MainWindow
    from app.settings import Settings

    app, _ = create_application([])
    with tempfile.TemporaryDirectory() as tmp:
        window = MainWindow(Settings(Path(tmp) / "screenshot.ini"))
        window.resize(1600, 1000)
        window.show()
        window.open_paths(paths)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            QTest.qWait(100)
            idle = not window.indexer.busy and not window.loader.busy and not window.thumbnails.pending()
            if idle and window.viewer.image() is not None:
                break
        if model:
            panel = window.analysis_panel
            panel.refresh_models()
            deadline = time.monotonic() + 120
            while not panel.select_model(model) and time.monotonic() < deadline:
                QTest.qWait(200)
            panel.run_current()
            while (panel.busy or panel.heatmap is None) and time.monotonic() < deadline:
                QTest.qWait(200)
        QTest.qWait(500)  # let the last repaint happen
        if window.last_notice is not None:
            window.last_notice.close()
        ok = window.grab().save(str(out))
        window.close()
        from app.workers import shutdown_jobs

        shutdown_jobs()
    app.processEvents()
    if not ok:
        print(f"could not write {out}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
