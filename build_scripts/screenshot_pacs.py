"""Screenshot of the PACS Query/Retrieve dock with a real search result, for the README.

Usage::

    Xvfb :92 -screen 0 1600x1000x24 &  DISPLAY=:92 .venv/bin/python build_scripts/screenshot_pacs.py OUT.png

Starts a local Orthanc (tests/helpers/orthanc.py) seeded by dcmtk's storescu with the shared test
files plus a few synthetic studies (the project's DICOM factory: made-up patients), saves it as the
node "Hospital PACS (test)", opens the real window, retrieves the chest radiograph by C-GET into the
cache (it opens in the browser and the viewer), then searches every study (name ``*``), expands the
newest study's series and saves ``window.grab()``. The event loop runs (``app.exec`` with a QTimer
stepping through the states), so the worker pool is never starved.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CR_STUDY = "1.2.276.0.7230010.3.1.2.8323329.6904.1517875201.850818"
FAKE_STUDIES = (("Example^Anna", "DEMO-0042", "20240311", "DX", "Chest PA and lateral", 2),
                ("Sample^Ben", "DEMO-0107", "20231125", "CR", "Chest AP portable", 1),
                ("Example^Anna", "DEMO-0042", "20220509", "DX", "Chest PA", 1))


def seed(server, work: Path) -> None:  # noqa: ANN001 - OrthancServer
    from tests.helpers.dicom_factory import new_uid, write_dicom
    from tests.helpers.orthanc import seed_paths
    from tests.helpers.pacs_big import seed_together

    server.seed(seed_paths(REPO.parent / "shared" / "data" / "dicom"))
    paths = []
    for i, (name, pid, date, modality, description, images) in enumerate(FAKE_STUDIES):
        study = new_uid()
        for k in range(images):
            paths.append(work / f"fake{i}_{k}.dcm")
            write_dicom(paths[-1], patient_name=name, patient_id=pid, study_uid=study, study_date=date,
                        accession_number=f"ACC{2000 + i}", study_description=description, modality=modality,
                        series_number=k + 1, series_description=("PA", "LAT")[k], instance_number=1)
    seed_together(server, paths)


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "resources/screenshots/pacs_dock.png")
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    tmp = Path(tempfile.mkdtemp(prefix="cxr-pacs-shot-"))
    os.environ["CXR_STUDIO_HOME"] = str(tmp / "home")
    from PySide6.QtCore import QTimer

    from app.__main__ import create_application
    from app.main_window import MainWindow
    from app.settings import Settings
    from ml.pacs.nodes import Node, save_nodes
    from tests.helpers.orthanc import OrthancServer

    server = OrthancServer(tmp / "orthanc").start()
    try:
        seed(server, tmp)
        save_nodes({"Hospital PACS (test)": Node("Hospital PACS (test)", server.aet, "127.0.0.1", server.dicom_port,
                                                 dicomweb_url=server.dicomweb_url)})
        app, _ = create_application([])
        window = MainWindow(Settings(tmp / "settings.ini"))
        window.resize(1560, 960)
        window.show()
        dock = window.pacs.show_query()
        p = dock.presenter
        steps = iter(["retrieve", "wait_retrieve", "search", "wait_search", "expand", "wait_series", "shoot"])
        state = {"step": next(steps), "deadline": time.monotonic() + 120, "rc": 1}

        def tick() -> None:
            step = state["step"]
            if time.monotonic() > state["deadline"]:
                print(f"timed out at {step}: {dock.message.text()}", file=sys.stderr)
                app.quit()
                return
            advance = True
            if step == "retrieve":
                dock.inputs["patient_name"].setText("*")
                dock.search()
            elif step == "wait_retrieve":
                if p.search_job is not None:
                    advance = False
                elif p.retrieve_job is None and not p.opened:
                    item = dock.study_item(CR_STUDY)
                    item.setSelected(True)
                    dock.retrieve_selected()
                    advance = False
                else:
                    advance = p.retrieve_job is None and window.viewer.image() is not None
            elif step == "search":
                dock.tree.clear()
                dock.search()
            elif step == "wait_search":
                advance = p.search_job is None
            elif step == "expand":
                dock.tree.topLevelItem(0).setExpanded(True)
                dock.tree.topLevelItem(0).setSelected(True)
            elif step == "wait_series":
                item = dock.tree.topLevelItem(0)
                advance = item.childCount() > 0 and item.child(0).text(0).startswith("Series")
            elif step == "shoot":
                window.tags_dock.raise_()  # the retrieved image's tags beside it
                out.parent.mkdir(parents=True, exist_ok=True)
                window.grab().save(str(out))
                print(f"wrote {out}: {dock.tree.topLevelItemCount()} studies listed")
                state["rc"] = 0
                app.quit()
                return
            if advance:
                state["step"] = next(steps)

        timer = QTimer()
        timer.setInterval(150)
        timer.timeout.connect(tick)
        timer.start()
        app.exec()
        window.close()
        from app.workers import shutdown_jobs

        shutdown_jobs()  # the model listing started with the window may still run
        return int(state["rc"])
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
