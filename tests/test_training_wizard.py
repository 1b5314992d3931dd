"""The training wizard driven end to end with pytest-qt (offscreen), with real training processes.

* the real paediatric radiographs in ../shared/data/cxr/kermany-val: choose the folder, scan, split,
  a tiny model at 64 px for 2 epochs, live curves, the evaluation page, save into the library, and the
  analysis panel then uses the new model on an image (with its heatmap);
* synthetic phantoms: cancel a run mid-way, resume it, and it finishes;
* a folder with the wrong layout: a readable message and no way forward;
* the exported config and torchrun command.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QWizard

from app.training import install, open_wizard
from app.training.process import cxr_program, train_arguments
from app.training.wizard import DATA, EVALUATE, MODEL, RUN, SPLIT, TrainingWizard
from tests.helpers.phantoms import write_phantom_folder

REPO = Path(__file__).resolve().parents[1]
KERMANY = Path(__file__).resolve().parents[2] / "shared" / "data" / "cxr" / "kermany-val"
TRAIN_MS = 240_000  # a real training process on 2 shared cores
WAIT_MS = 120_000


def snapshot(folder: Path) -> dict[str, tuple[str, int, float]]:
    """Every file under ``folder``: content hash, size and modification time."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(folder))] = (
                hashlib.sha256(p.read_bytes()).hexdigest(),
                st.st_size,
                st.st_mtime,
            )
    return out


def scan(qtbot, wiz: TrainingWizard, folder: Path) -> None:
    page = wiz.data_page
    page.set_source(str(folder))
    page.scan_button.click()
    qtbot.waitUntil(lambda: not page.scanning(), timeout=WAIT_MS)


def to_run_page(qtbot, wiz: TrainingWizard, size: int, epochs: int, batch: int) -> None:
    assert wiz.currentId() == DATA and wiz.data_page.isComplete()
    wiz.next()
    assert wiz.currentId() == SPLIT
    qtbot.waitUntil(wiz.split_page.isComplete, timeout=WAIT_MS)
    wiz.next()
    assert wiz.currentId() == MODEL
    m = wiz.model_page
    m.arch.setCurrentIndex(m.arch.findData("cxr_resnet_small"))
    m.image_size.setValue(size)
    m.epochs.setValue(epochs)
    m.batch_size.setValue(batch)
    m.device.setCurrentIndex(m.device.findData("cpu"))
    wiz.next()
    assert wiz.currentId() == RUN


def wait_run(qtbot, page, states=("finished", "failed", "stopped")) -> None:
    qtbot.waitUntil(lambda: page.state in states and not page.running(), timeout=TRAIN_MS)


@pytest.fixture
def window(qtbot, tmp_path: Path):
    from app.main_window import MainWindow
    from app.settings import Settings
    from app.workers import running_jobs

    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    win = MainWindow(Settings(tmp_path / "settings.ini"))
    qtbot.addWidget(win)
    if getattr(win, "analysis_panel", None) is None:
        from app.analysis import install as install_analysis

        install_analysis(win)
    win.show()
    yield win
    wiz = getattr(win, "training_wizard", None)
    if wiz is not None:
        wiz.shutdown()
    win.close()
    qtbot.waitUntil(lambda: running_jobs() == 0, timeout=WAIT_MS)


# ---------------------------------------------------------------------------- real radiographs


def test_end_to_end_on_real_radiographs_then_used_by_the_analysis_panel(qtbot, window, tmp_path: Path) -> None:
    if not KERMANY.is_dir():
        pytest.fail(f"shared test data missing at {KERMANY}")
    before = snapshot(KERMANY)
    action = install(window)
    assert install(window) is action  # idempotent
    assert action.shortcut().toString() == "Ctrl+T"
    assert action in window.training_menu.actions()
    action.trigger()
    wiz = window.training_wizard
    assert wiz.isVisible() and open_wizard(window) is wiz

    # 1. data: two classes of eight real JPEGs, with thumbnails
    scan(qtbot, wiz, KERMANY)
    page = wiz.data_page
    assert page.isComplete(), page.message.text()
    rows = {page.class_table.item(i, 0).text(): page.class_table.item(i, 1).text()
            for i in range(page.class_table.rowCount())}  # fmt: skip
    assert rows == {"NORMAL": "8", "PNEUMONIA": "8", "Total images": "16"}
    assert "folder" in page.detected_label.text().lower()
    assert "No duplicates" in page.message.text()
    assert page.samples.count() == 8  # four samples per class
    qtbot.waitUntil(lambda: page.samples.pending == 0, timeout=WAIT_MS)

    # 2. split: patients and images per part, patient-level from the file names
    split_page = wiz.split_page
    wiz.next()
    qtbot.waitUntil(split_page.isComplete, timeout=WAIT_MS)
    table = split_page.table
    header = [table.horizontalHeaderItem(j).text() for j in range(table.columnCount())]
    assert header == ["Part", "Patients", "Images", "NORMAL", "PNEUMONIA"]
    images = [int(table.item(i, 2).text()) for i in range(3)]
    assert sum(images) == 16 and all(n > 0 for n in images)
    assert "Patient-level" in split_page.level_label.text()
    wiz.back()
    assert wiz.currentId() == DATA

    # 3. model: cxr_resnet_small at 64 px, 2 epochs, batch 4; the augmentation preview works
    to_run_page(qtbot, wiz, 64, 2, 4)
    assert wiz.config.arch == "cxr_resnet_small" and wiz.config.image_size == 64
    preview = wiz.model_page.show_preview()
    qtbot.waitUntil(lambda: len(preview.tiles) == 9, timeout=WAIT_MS)
    assert preview.tiles[0].pixmap().width() > 0
    preview.close()

    # 4. run: a real `cxr train` process, live curves, never blocking the GUI
    run = wiz.run_page
    assert not run.isComplete()
    run.start_button.click()
    assert run.running()
    wait_run(qtbot, run)
    assert run.state == "finished", run.message.text() + "\n" + run.log.toPlainText()
    assert wiz.button(QWizard.WizardButton.NextButton).isEnabled()
    assert len(run.curves.points("train_loss")) == 2
    assert len(run.curves.points("val_loss")) == 2
    assert run.curves.batches, "no batch points on the loss curve"
    assert run.progress.value() == run.progress.maximum()
    assert "images/s" in run.stats.text()
    run_dir = wiz.run_dir
    assert (run_dir / "model.safetensors").is_file() and (run_dir / "split.csv").is_file()
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["image_size"] == 64 and cfg["epochs"] == 2 and cfg["batch_size"] == 4
    from ml.models.bundle import read_manifest

    assert read_manifest(run_dir / "model.safetensors").description.startswith("Trained from scratch")  # no weights
    wiz.resize(1200, 850)
    qtbot.wait(100)
    assert wiz.grab().save(str(tmp_path / "wizard_run.png"))

    # 5. evaluate: metrics table, 2x2 confusion matrix, ROC, misclassified gallery
    wiz.next()
    assert wiz.currentId() == EVALUATE
    ev = wiz.evaluate_page
    metrics = json.loads((run_dir / "metrics.json").read_text())
    n_test = metrics["test"]["n_images"]
    assert ev.confusion.rowCount() == 2 and ev.confusion.columnCount() == 2
    assert sum(int(x) for row in ev.confusion.values() for x in row) == n_test
    assert ev.table.rowCount() == 3  # two classes + macro average
    assert [ev.table.verticalHeaderItem(i).text() for i in range(3)] == [
        "NORMAL",
        "PNEUMONIA",
        "Macro average",
    ]
    assert ev.table.item(2, 3).text() == f"{metrics['test']['macro']['f1']:.3f}"
    assert f"{n_test} images" in ev.headline.text()
    assert ev.gallery.count() == len(metrics["misclassified"])
    # calibration fitted on validation: ECE before/after and the operating point stated, reliability drawn
    calib = metrics["calibration"]
    if calib["temperature"] is not None:
        assert "fitted on the validation split" in ev.calibration.text() and "ECE" in ev.calibration.text()
        assert set(ev.reliability.curves) == {"before", "after temperature"}
        assert metrics["operating_point"]["text"][1:] in ev.calibration.text()  # "Operating point: Youden's J ..."
    else:
        assert calib["note"] in ev.calibration.text()
    assert set(ev.roc.curves) <= {"NORMAL", "PNEUMONIA"}
    assert ev.roc.curves, "no ROC curve drawn"
    for label, curve in ev.roc.curves.items():  # a valid ROC: from (0, 0) to (1, 1), never going back
        fpr, tpr = (list(map(float, a)) for a in curve.getData())
        assert len(fpr) >= 2 and len(fpr) == len(tpr), label
        assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0), label
        assert all(0.0 <= v <= 1.0 for v in fpr + tpr), label
        assert all(b >= a for xs in (fpr, tpr) for a, b in zip(xs, xs[1:], strict=False)), label
    qtbot.waitUntil(lambda: ev.gallery.pending == 0, timeout=WAIT_MS)
    qtbot.wait(100)
    assert wiz.grab().save(str(tmp_path / "wizard_eval.png"))

    # save into the library: the analysis panel lists and selects it at once
    panel = window.analysis_panel
    ev.name_edit.setText("kermany-test-model")
    ev.save_button.click()
    qtbot.waitUntil(lambda: ev.saved_name == "kermany-test-model", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: panel.current_model_name() == "kermany-test-model", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: panel.loaded is not None and panel.loaded.manifest.name == "kermany-test-model",
                    timeout=WAIT_MS)  # fmt: skip
    from ml.models.library import find_model

    assert find_model("kermany-test-model") is not None

    # double-click on an image in the gallery (or any test image): viewer + prediction + heatmap
    image_path = metrics["misclassified"][0]["path"] if metrics["misclassified"] else sorted(
        str(p) for p in KERMANY.rglob("*.jpeg"))[0]  # fmt: skip
    ev.open_image(image_path)
    qtbot.waitUntil(lambda: window.viewer.image() is not None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: panel.prediction is not None and not panel.busy, timeout=WAIT_MS)
    assert sorted(r.label for r in panel.table.rows()) == ["NORMAL", "PNEUMONIA"]
    qtbot.waitUntil(lambda: panel.heatmap is not None and panel.heatmap.complete and not panel.busy,
                    timeout=WAIT_MS)  # fmt: skip

    # the source folder is byte-for-byte unchanged
    assert snapshot(KERMANY) == before


# ---------------------------------------------------------------------------- phantoms: cancel, resume


def test_cancel_then_resume_finishes_on_phantoms(qtbot, tmp_path: Path) -> None:
    folder = tmp_path / "phantoms"
    write_phantom_folder(folder, n_per_class=10, fmt="png")
    before = snapshot(folder)
    wiz = TrainingWizard()
    qtbot.addWidget(wiz)
    wiz.show()
    try:
        scan(qtbot, wiz, folder)
        assert wiz.data_page.isComplete(), wiz.data_page.message.text()
        to_run_page(qtbot, wiz, 48, 8, 4)
        wiz.model_page.early.setChecked(False)
        run = wiz.run_page
        run.start_button.click()
        qtbot.waitUntil(lambda: any(e["event"] == "batch" for e in run.events_seen), timeout=TRAIN_MS)
        run.cancel_button.click()
        assert run.state == "stopping" and not run.cancel_button.isEnabled()
        wait_run(qtbot, run)
        assert run.state == "stopped", run.message.text() + "\n" + run.log.toPlainText()
        assert run.exit_code == 3
        assert "resumable" in run.message.text()
        assert not run.isComplete() and run.resume_button.isEnabled()
        assert (wiz.run_dir / "checkpoints" / "last.pt").is_file()
        assert not (wiz.run_dir / "model.safetensors").exists()
        epochs_before = len(run.curves.points("train_loss"))
        assert epochs_before < 8

        run.resume_button.click()
        assert run.running() and not run.resume_button.isEnabled()
        wait_run(qtbot, run)
        assert run.state == "finished", run.message.text() + "\n" + run.log.toPlainText()
        kinds = [e["event"] for e in run.events_seen]
        assert "stopped" in kinds and kinds[-1] == "finished"
        assert [e.get("resumed") for e in run.events_seen if e["event"] == "start"] == [False, True]
        assert [p[0] for p in run.curves.points("train_loss")] == [float(i) for i in range(1, 9)]
        wiz.next()
        ev = wiz.evaluate_page
        assert ev.confusion.rowCount() == 2 and ev.table.rowCount() == 3
        assert snapshot(folder) == before
    finally:
        wiz.shutdown()


# ---------------------------------------------------------------------------- bad input


def test_wrong_layout_shows_the_message_and_disables_next(qtbot, tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    write_phantom_folder(flat, n_per_class=2, fmt="png")
    for p in list(flat.rglob("*.png")):
        p.rename(flat / p.name)  # images directly in the folder, no class sub-folders
    for d in ("lesion", "normal"):
        (flat / d).rmdir()
    wiz = TrainingWizard()
    qtbot.addWidget(wiz)
    wiz.show()
    next_button = wiz.button(QWizard.WizardButton.NextButton)
    assert not next_button.isEnabled()
    scan(qtbot, wiz, flat)
    page = wiz.data_page
    assert page.message.is_error
    assert "No class sub-folders" in page.message.text()
    assert not page.isComplete() and not next_button.isEnabled()

    empty = tmp_path / "empty"
    empty.mkdir()
    scan(qtbot, wiz, empty)
    assert page.message.is_error and "empty" in page.message.text()
    assert not next_button.isEnabled()

    scan(qtbot, wiz, tmp_path / "does-not-exist")
    assert page.message.is_error and "does not exist" in page.message.text()
    assert not next_button.isEnabled()


# ---------------------------------------------------------------------------- command lines


def test_export_config_and_torchrun_command(qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ml.training.config import TrainConfig

    folder = tmp_path / "phantoms"
    write_phantom_folder(folder, n_per_class=4, fmt="png")
    wiz = TrainingWizard()
    qtbot.addWidget(wiz)
    scan(qtbot, wiz, folder)
    wiz.show()
    to_run_page(qtbot, wiz, 64, 3, 8)
    assert wiz.model_page.nproc.text() == "1 GPU"
    wiz.model_page.nproc.setValue(4)
    assert wiz.model_page.nproc.text() == "4 GPUs"
    path, command = wiz.model_page.export_to(str(tmp_path / "export"))
    config = TrainConfig.load(path)
    assert config.data.path == str(folder) and config.epochs == 3 and config.image_size == 64
    assert command.startswith("torchrun --nproc_per_node=4 -m ml train --config config.json --out ")
    from PySide6.QtWidgets import QPlainTextEdit

    shown = wiz.model_page.export_dialog.findChild(QPlainTextEdit).toPlainText()
    assert command in shown and str(path) in shown

    # the process command: python -m ml train ... ; a frozen app runs itself with `train ...`
    assert cxr_program() == (sys.executable, ["-m", "ml"])
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert cxr_program() == (sys.executable, [])
    args = train_arguments(tmp_path / "run", tmp_path / "run" / "config.json")
    assert args[:3] == ["train", "--config", str(tmp_path / "run" / "config.json")]
    assert "--out" in args and "--quiet" in args and args[args.index("--events") + 1].endswith("events.jsonl")
    assert train_arguments(tmp_path / "run", resume=True)[:3] == ["train", "--resume", str(tmp_path / "run")]
