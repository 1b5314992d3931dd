"""Training > "Evaluate on my data…" end to end (offscreen): a tiny model from the library checked and
calibrated on the real kermany-val radiographs, a new version in the library, the original unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

RUN_MS = 240_000


def tiny_model(tmp_path: Path) -> Path:
    import torch

    from ml.models import bundle, library
    from ml.models.manifest import ModelManifest
    from ml.models.registry import build_model

    torch.manual_seed(0)
    manifest = ModelManifest(name="tiny-pneumonia", architecture="cxr_resnet_small",
                             labels=["NORMAL", "PNEUMONIA"], input_size=64)  # fmt: skip
    source = bundle.save_model(tmp_path / "tiny.safetensors", build_model("cxr_resnet_small", 2, 1), manifest)
    return library.import_model(source).path


def test_evaluate_on_my_data_from_the_training_menu(qtbot, tmp_path: Path, shared_data: Path) -> None:  # noqa: ANN001
    from PySide6.QtCore import QSettings

    from app.main_window import MainWindow
    from app.settings import Settings
    from app.workers import running_jobs
    from ml.fileio import sha256_file
    from ml.models import library

    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    installed = tiny_model(tmp_path)
    digest = sha256_file(installed)
    win = MainWindow(Settings(tmp_path / "settings.ini"))
    qtbot.addWidget(win)
    if getattr(win, "analysis_panel", None) is None:
        from app.analysis import install as install_analysis

        install_analysis(win)
    win.show()
    action = next(a for a in win.training_menu.actions() if a.objectName() == "site_evaluation")
    assert action.text().replace("&", "") == "Evaluate on my data…"
    action.trigger()
    dialog = win.site_dialog
    names = [dialog.model_combo.itemData(i) for i in range(dialog.model_combo.count())]
    assert "tiny-pneumonia" in names
    assert not dialog.run_button.isEnabled()  # no data chosen yet
    dialog.model_combo.setCurrentIndex(names.index("tiny-pneumonia"))
    dialog.data_edit.setText(str(tmp_path / "nowhere"))
    assert not dialog.run_button.isEnabled() and "does not exist" in dialog.message.text()
    dialog.data_edit.setText(str(shared_data / "cxr" / "kermany-val"))
    dialog.target_check.setChecked(True)
    dialog.target_spin.setValue(0.9)
    assert dialog.run_button.isEnabled()
    dialog.run_button.click()
    assert dialog.progress.busy and not dialog.run_button.isEnabled()
    qtbot.waitUntil(lambda: not dialog.presenter.busy, timeout=RUN_MS)

    outcome = dialog.presenter.outcome
    assert outcome is not None, dialog.message.text()
    assert outcome.new_model == "tiny-pneumonia-site" and outcome.source_unchanged
    assert sha256_file(installed) == digest  # the original model file is never changed
    new = library.find_model("tiny-pneumonia-site")
    assert new is not None and new.path != installed
    assert new.manifest.provenance.extra["site_calibration"]["source_model"]["sha256"] == digest
    assert (
        new.manifest.provenance.extra["site_calibration"]["operating_points"]["rule"] == "sensitivity >= 0.9"
    )
    # what the user sees: the before/after table on the check half, the report, the new version listed
    rows = {dialog.table.item(r, 0).text(): (dialog.table.item(r, 1).text(), dialog.table.item(r, 2).text())
            for r in range(dialog.table.rowCount())}  # fmt: skip
    assert {"Temperature", "Expected calibration error (ECE)", "PNEUMONIA: AUROC, 95% CI",
            "PNEUMONIA: sensitivity"} <= set(rows)  # fmt: skip
    assert rows["Temperature"][1] == f"{new.manifest.temperature:g}"
    assert "check half" in dialog.headline.text()
    assert dialog.report.pixmap() is not None and not dialog.report.pixmap().isNull()
    assert Path(outcome.report_path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    listed = [dialog.model_combo.itemData(i) for i in range(dialog.model_combo.count())]
    assert "tiny-pneumonia-site" in listed and dialog.model_combo.currentData() == "tiny-pneumonia"
    assert "new version 'tiny-pneumonia-site'" in dialog.message.text()
    # "Use this version" chooses it in the analysis panel once the panel has listed it
    assert dialog.use_button.isEnabled()
    dialog.use_button.click()
    qtbot.waitUntil(lambda: win.analysis_panel.current_model_name() == "tiny-pneumonia-site", timeout=60_000)

    dialog.close()
    win.close()
    qtbot.waitUntil(lambda: running_jobs() == 0, timeout=60_000)


def test_cancel_saves_no_new_version(qtbot, tmp_path: Path, shared_data: Path) -> None:  # noqa: ANN001
    from app.training.site_dialog import SiteDialog
    from app.workers import running_jobs
    from ml.models import library

    tiny_model(tmp_path)
    dialog = SiteDialog(models=lambda: [m for m in library.list_models() if m.manifest is not None])
    qtbot.addWidget(dialog)
    assert dialog.model_combo.currentData() == "tiny-pneumonia"  # the only one installed
    dialog.data_edit.setText(str(shared_data / "cxr" / "kermany-val"))
    dialog.run_button.click()
    dialog.progress.cancel_button.click()
    qtbot.waitUntil(lambda: not dialog.presenter.busy, timeout=RUN_MS)
    assert dialog.message.text() == "Cancelled: no new version was saved."
    assert library.find_model("tiny-pneumonia-site") is None and dialog.presenter.new_version() is None
    assert (
        dialog.run_button.isEnabled() and not dialog.use_button.isEnabled() and dialog.table.rowCount() == 0
    )
    qtbot.waitUntil(lambda: running_jobs() == 0, timeout=60_000)
