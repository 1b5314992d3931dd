"""The training wizard's presenters over mock views: no display, no Qt, no torch.

Each page's rules (what may be scanned, when a split is usable, which settings make a config, what a
run's events mean, which ROC curves can be drawn) are tested here on the Qt-free presenters and the
one :class:`TrainingSession` they share.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest.mock import MagicMock

import pytest

from app.training import data_presenter as dp
from app.training.evaluate_presenter import EvaluatePresenter, evaluation, label_matrix, valid_roc
from app.training.model_presenter import CHOICE_TEXT, ModelPresenter, choice_lists, gpu_suffix
from app.training.run_presenter import EXIT_STOPPED, RunPresenter, run_summary, weights_phrase
from app.training.session import TrainingSession
from app.training.split_presenter import SplitPresenter, SplitSettings
from ml.training import config as cfg
from ml.training import events as ev
from ml.training.config import ConfigError, DataConfig, TrainConfig

REPO = Path(__file__).resolve().parents[1]


def test_presenters_import_neither_qt_nor_torch() -> None:
    code = (
        "import sys\n"
        "import app.training.session, app.training.data_presenter, app.training.split_presenter\n"
        "import app.training.model_presenter, app.training.run_presenter, app.training.evaluate_presenter\n"
        "print(sorted(m for m in ('torch', 'PySide6', 'pyqtgraph') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------- fakes


def labelled_set(counts: dict[str, int], duplicates: int = 0) -> Any:
    samples = [SimpleNamespace(path=f"/data/{label}/{i}.png", labels=[label])
               for label, n in counts.items() for i in range(n)]  # fmt: skip
    report = SimpleNamespace(
        kind="folder", n_duplicates=duplicates, n_unreadable=1, filtered={"lateral view": 2}, notes=[],
        unreadable=[("/data/x/broken.dcm", "truncated pixel data")],
        duplicates=[("/data/a/copy.png", "/data/a/0.png")] * duplicates,
    )  # fmt: skip
    return SimpleNamespace(labels=list(counts), samples=samples, task="multiclass", report=report,
                           label_counts=lambda: dict(counts))  # fmt: skip


def data_view(path: str = "", preset: str = "auto") -> MagicMock:
    view = MagicMock()

    def read(d: DataConfig) -> None:
        d.path, d.preset = view.path, view.preset

    view.path, view.preset = path, preset
    view.read_settings.side_effect = read
    return view


def last_message(view: MagicMock) -> tuple[str, bool]:
    args, kwargs = view.show_message.call_args
    return args[0], bool(kwargs.get("error", args[1] if len(args) > 1 else False))


# ---------------------------------------------------------------------------- session


def test_session_builds_one_validated_config_from_every_page_part() -> None:
    s = TrainingSession()
    with pytest.raises(ConfigError, match="no data source"):
        s.build_config()
    s.add_config_part(lambda c: setattr(c.data, "path", "/data"))
    s.add_config_part(lambda c: setattr(c, "epochs", 3))
    config = s.build_config()
    assert config.data.path == "/data" and config.epochs == 3 and s.config.epochs == 3
    s.split = object()
    s.set_data(labelled_set({"a": 1, "b": 1}))
    assert s.split is None  # a new scan: the old split no longer applies
    s.new_run(Path("/runs/1"))
    with pytest.raises(ValueError):
        s.set_run_state("paused")


# ---------------------------------------------------------------------------- data page


def test_scan_needs_a_source_and_runs_once_at_a_time() -> None:
    view, session = data_view(), TrainingSession()
    p = dp.DataPresenter(view, session, detect=lambda _p: "")
    p.scan()
    assert last_message(view) == ("Choose a folder or a CSV file first.", True)
    view.start_scan.assert_not_called()
    view.path = "/data"
    p.scan()
    p.scan()  # pressed again while scanning: ignored
    view.start_scan.assert_called_once()
    assert view.start_scan.call_args.args[0].path == "/data"
    assert p.scanning and not p.is_complete()
    p.cancel()
    view.stop_scan.assert_called_once()


def test_scan_result_summary_and_completeness() -> None:
    view, session = data_view("/data"), TrainingSession()
    p = dp.DataPresenter(view, session, detect=lambda _p: "")
    p.scan()
    p.scan_finished(labelled_set({"NORMAL": 8, "PNEUMONIA": 6}))
    summary = view.show_summary.call_args.args[0]
    assert summary.class_rows == [("NORMAL", 8), ("PNEUMONIA", 6), ("Total images", 14)]
    assert "14 images in 2 classes" in summary.message and "No duplicates found." in summary.message
    assert "2 image(s) left out: lateral view." in summary.message
    assert summary.problems == ["broken.dcm: truncated pixel data"]
    assert [caption for _p, caption, _t in summary.samples] == ["NORMAL"] * 4 + ["PNEUMONIA"] * 4
    assert not p.is_complete()  # still scanning until the job is done
    p.scan_done()
    assert p.is_complete() and not p.scanning

    # a setting changes: the scan no longer applies
    p.settings_changed()
    assert session.data is None and not p.is_complete()
    assert last_message(view) == (dp.STALE, False)


def test_one_class_is_not_enough_and_failures_are_shown() -> None:
    view, session = data_view("/data"), TrainingSession()
    p = dp.DataPresenter(view, session, detect=lambda _p: "")
    p.scan()
    p.scan_finished(labelled_set({"NORMAL": 5}))
    p.scan_done()
    assert not p.is_complete()
    p.scan()
    p.scan_failed("No class sub-folders in /data.")
    p.scan_done()
    assert last_message(view) == ("No class sub-folders in /data.", True) and not p.is_complete()


def test_source_options_follow_the_files(tmp_path: Path) -> None:
    table = tmp_path / "labels.csv"
    table.write_text("Path,Finding\na.png,NORMAL\n", encoding="utf-8")
    view = data_view(str(table))
    p = dp.DataPresenter(view, TrainingSession(), detect=lambda _p: "csv")
    p.source_changed()
    o = view.show_source_options.call_args.args[0]
    assert o.csv_columns and o.csv_header == ("Path", "Finding") and o.detected == "detected: CSV file of paths and labels"
    view.path, view.preset = str(tmp_path), "chexpert"
    p.source_changed()
    o = view.show_source_options.call_args.args[0]
    assert not o.csv_columns and o.csv_header is None
    assert o.dataset_options and o.chexpert and not o.siim


# ---------------------------------------------------------------------------- split page


def fake_split(test_images: int, val_images: int = 3, level: str = "patient") -> Any:
    part = lambda n: {"patients": n, "images": n, "per_class": {"a": n // 2, "b": n - n // 2}}  # noqa: E731
    summary = {"splits": {"train": part(10), "val": part(val_images), "test": part(test_images)}}
    return SimpleNamespace(summary=lambda: summary, labels=["a", "b"], level=level, source="file names")


def split_setup(settings: SplitSettings | None = None) -> tuple[MagicMock, TrainingSession, SplitPresenter]:
    view, session = MagicMock(), TrainingSession()
    view.read_settings.return_value = settings or SplitSettings()
    view.pending.return_value = False
    session.data = labelled_set({"a": 10, "b": 10})
    return view, session, SplitPresenter(view, session)


def test_split_needs_the_patient_pattern_it_names() -> None:
    view, session, p = split_setup(SplitSettings(patient_mode="regex"))
    p.patient_mode_changed()
    view.show_patient_argument.assert_called_with(True, r"e.g. (\d+)_\d+\.png")
    p.compute()
    assert last_message(view)[1] and "pattern" in last_message(view)[0]
    view.start_split.assert_not_called()
    view.read_settings.return_value = SplitSettings(patient_mode="regex", patient_arg=r"(\d+)_")
    p.compute()
    _data, config, seed = view.start_split.call_args.args
    assert config.patient_id == r"regex:(\d+)_" and config.ratios == pytest.approx([0.7, 0.15, 0.15])


def test_split_with_an_empty_test_part_cannot_be_used() -> None:
    view, session, p = split_setup()
    p.compute()
    p.split_ready(fake_split(test_images=0))
    p.split_done()
    assert session.split is None and not p.is_complete()
    assert last_message(view)[1] and "test part is empty" in last_message(view)[0]
    p.compute()
    p.split_ready(fake_split(test_images=4, val_images=0))
    p.split_done()
    assert p.is_complete()
    assert "validation part is empty" in last_message(view)[0]
    table = view.show_table.call_args.args[0]
    assert table.columns == ["Part", "Patients", "Images", "a", "b"]
    assert [r[0] for r in table.rows] == ["Training", "Validation", "Test"] and "Patient-level" in table.level


def test_settings_changed_while_splitting_recomputes_and_drops_the_stale_result() -> None:
    view, session, p = split_setup()
    p.compute()
    p.settings_changed()
    p.compute()  # the debounce fires while the first split still runs
    assert view.start_split.call_count == 1
    p.split_ready(fake_split(4))  # computed with the old settings
    assert session.split is None
    p.split_done()
    assert view.start_split.call_count == 2  # recomputed with the new settings
    p.split_ready(fake_split(4))
    p.split_done()
    assert session.split is not None and p.is_complete()


# ---------------------------------------------------------------------------- model page


def test_gpu_count_is_singular_for_one() -> None:
    assert gpu_suffix(1) == " GPU" and gpu_suffix(4) == " GPUs"
    view = MagicMock()
    p = ModelPresenter(view, TrainingSession(), catalogue=MagicMock())
    p.gpus_changed(1)
    view.show_gpu_suffix.assert_called_with(" GPU")
    p.gpus_changed(2)
    view.show_gpu_suffix.assert_called_with(" GPUs")


def test_combo_boxes_offer_exactly_the_configs_choices_with_words() -> None:
    lists = choice_lists()
    for key, values in (("optimizer", cfg.OPTIMIZERS), ("scheduler", cfg.SCHEDULERS), ("monitor", cfg.MONITORS),
                        ("imbalance", cfg.IMBALANCE_MODES), ("resize", cfg.RESIZE_MODES), ("voi", cfg.VOI_MODES),
                        ("normalisation", cfg.NORMALISATIONS)):  # fmt: skip
        assert [v for _t, v in lists[key]] == list(values), key
        assert all(text == CHOICE_TEXT[key][v] for text, v in lists[key]), f"{key}: a value without words"
    from app.training.split_presenter import PATIENT_SOURCES, PATIENT_TEXT

    for pairs, values, texts in ((dp.PRESET_NAMES, cfg.PRESET_CHOICES, dp.PRESET_TEXT),
                                 (dp.CHEXPERT_NAMES, cfg.CHEXPERT_POLICIES, dp.CHEXPERT_TEXT),
                                 (dp.SIIM_NAMES, cfg.SIIM_TASKS, dp.SIIM_TEXT),
                                 (PATIENT_SOURCES, cfg.PATIENT_ID_MODES, PATIENT_TEXT)):  # fmt: skip
        assert [v for _t, v in pairs] == list(values)
        assert all(text == texts[v] for text, v in pairs)
    defaults = TrainConfig()
    for key in ("optimizer", "scheduler", "monitor", "imbalance", "resize", "voi", "normalisation", "device"):
        assert getattr(defaults, key) in [v for _t, v in lists[key]], key


def test_scratch_is_not_called_fine_tuned() -> None:
    assert weights_phrase("none") == "trained from scratch"
    assert weights_phrase("imagenet") == "fine-tuned from ImageNet weights"
    assert weights_phrase("/lib/my-model.safetensors") == "fine-tuned from my-model"
    text = run_summary(TrainConfig(epochs=2))
    assert "trained from scratch" in text and "Fine-tuned" not in text and "2 epoch(s)" in text


def test_model_page_validates_and_offers_the_architectures_weights() -> None:
    view, session = MagicMock(), TrainingSession()
    view.current_architecture.return_value = "cxr_resnet_small"
    catalogue = MagicMock()
    catalogue.architectures.return_value = ["cxr_resnet_small", "resnet18"]
    catalogue.describe.return_value = ("A small ResNet", 224, 1)
    catalogue.weight_choices.return_value = [("None: train from scratch", "none")]
    p = ModelPresenter(view, session, catalogue)
    p.page_shown()
    view.show_architectures.assert_called_once_with(["cxr_resnet_small", "resnet18"], "cxr_resnet_small")
    info = view.show_architecture.call_args.args[0]
    assert "default input 224 px, 1 channel(s)" in info.info and info.weights == [("None: train from scratch", "none")]

    assert not p.validate()  # no data source yet
    assert last_message(view)[1] and "data source" in last_message(view)[0]
    session.add_config_part(lambda c: setattr(c.data, "path", "/data"))
    view.read_settings.side_effect = lambda c: setattr(c, "epochs", 0)
    assert not p.validate() and "epochs" in last_message(view)[0]
    view.read_settings.side_effect = lambda c: setattr(c, "epochs", 4)
    assert p.validate() and session.config.epochs == 4
    assert p.summary() == "cxr_resnet_small trained from scratch"


def test_preview_needs_scanned_images() -> None:
    view, session = MagicMock(), TrainingSession()
    p = ModelPresenter(view, session, MagicMock())
    assert p.preview_request() is None and "Scan the data first" in last_message(view)[0]
    session.data = labelled_set({"a": 2, "b": 2})
    _config, path, labels, task = p.preview_request()
    assert path == "/data/a/0.png" and labels == ["a", "b"] and task == "multiclass"


# ---------------------------------------------------------------------------- run page


class FakeProcess:
    def __init__(self) -> None:
        self.running = False
        self.starts: list[tuple[Path, Path | None, bool]] = []
        self.cancels = 0

    def is_running(self) -> bool:
        return self.running

    def start(self, run_dir: Path, config_path: Path | None = None, resume: bool = False) -> None:
        self.running = True
        self.starts.append((run_dir, config_path, resume))

    def cancel(self) -> None:
        self.cancels += 1


def run_setup(tmp_path: Path, data_path: str = "/data") -> tuple[MagicMock, TrainingSession, FakeProcess, RunPresenter]:
    view, session, proc = MagicMock(), TrainingSession(), FakeProcess()
    session.add_config_part(lambda c: (setattr(c.data, "path", data_path), setattr(c, "epochs", 2)))
    clock = iter(range(0, 10_000, 65))
    p = RunPresenter(view, session, proc, make_run_dir=lambda _c: tmp_path / "run1", clock=lambda: next(clock))
    return view, session, proc, p


def test_a_run_follows_its_events_to_the_end(tmp_path: Path) -> None:
    view, session, proc, p = run_setup(tmp_path)
    p.start()
    run_dir = tmp_path / "run1"
    assert proc.starts == [(run_dir, run_dir / "config.json", False)]
    assert json.loads((run_dir / "config.json").read_text())["epochs"] == 2
    assert p.state == "running" and not p.is_complete()
    b = view.show_buttons.call_args.args[0]
    assert not b.start and b.cancel and not b.resume and b.start_text == "Start a new run"

    p.handle_events([ev.Start(device="cpu", run_dir=str(run_dir)), ev.EpochStart(epoch=1, epochs=2, lr=1e-3),
                     ev.BatchDone(epoch=2, batch=1, batches=4, loss=0.5, images_per_s=12.0, eta_s=30)])  # fmt: skip
    assert view.show_progress.call_args.args[0] == pytest.approx((1 + 1 / 4) / 2)
    assert "Epoch 2/2 · batch 1/4" in view.show_stats.call_args.args[0]
    assert "images/s" in view.show_stats.call_args.args[0]
    p.handle_events([ev.EpochEnd(epoch=2, epochs=2, train_loss=0.4, best=True),
                     ev.Finished(model_path=str(run_dir / "model.safetensors"), metrics_path="m.json")])  # fmt: skip
    assert view.add_epoch.call_args.args[0]["train_loss"] == 0.4
    assert [e["event"] for e in session.run.events] == ["start", "epoch_start", "batch", "epoch_end", "finished"]
    proc.running = False
    p.process_finished(0, "Training finished.")
    assert p.state == "finished" and p.is_complete()
    assert view.show_progress.call_args.args[0] == 1.0
    assert last_message(view)[0].startswith("Training finished in 1:05.")


def test_cancel_then_resume(tmp_path: Path) -> None:
    view, session, proc, p = run_setup(tmp_path)
    p.start()
    p.cancel()
    assert proc.cancels == 1 and p.state == "stopping"
    assert not view.show_buttons.call_args.args[0].cancel  # pressed once: no second cancel
    proc.running = False
    p.process_finished(EXIT_STOPPED, "Training stopped; a resumable checkpoint was saved.")
    assert p.state == "stopped" and not p.is_complete()
    b = view.show_buttons.call_args.args[0]
    assert b.resume and b.start and not b.cancel
    p.resume()
    assert proc.starts[-1] == (tmp_path / "run1", None, True) and p.state == "running"
    view.append_log.assert_any_call("— resuming —")


def test_a_run_without_a_model_failed(tmp_path: Path) -> None:
    view, session, proc, p = run_setup(tmp_path)
    p.start()
    proc.running = False
    p.process_finished(0, "Training finished.")
    assert p.state == "failed" and last_message(view) == ("The training process ended without a model.", True)
    assert view.show_buttons.call_args.args[0].resume  # the run folder has its config: it can be resumed


def test_an_invalid_config_starts_nothing(tmp_path: Path) -> None:
    view, session, proc, p = run_setup(tmp_path, data_path="")
    p.start()
    assert proc.starts == [] and p.state == "idle"
    assert last_message(view)[1] and "data source" in last_message(view)[0]


# ---------------------------------------------------------------------------- evaluation page


def metrics_file(run_dir: Path, roc: dict[str, Any], multilabel: bool = False) -> dict[str, Any]:
    m = {"precision": 0.5, "recall": 1.0, "specificity": 0.5, "f1": 0.667, "auroc": 0.75, "auroc_ci95": [0.5, 1.0],
         "support": 2}  # fmt: skip
    test = {"n_images": 4, "n_patients": 4, "labels": ["a", "b"], "loss": 0.7, "accuracy": 0.75,
            "task": "multilabel" if multilabel else "multiclass", "per_class": {"a": m, "b": m}, "macro": m,
            "confusion_matrix": {"a": [[1, 1], [0, 2]], "b": [[2, 0], [1, 1]]} if multilabel else [[1, 1], [0, 2]],
            "roc": roc}  # fmt: skip
    metrics = {"test": test, "best_epoch": 2, "monitor": "val_loss",
               "misclassified": [{"path": "/d/a/1.png", "label": "a", "predicted": "b", "probability": 0.8}]}
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    (run_dir / "model.safetensors").write_bytes(b"")
    return metrics


GOOD_ROC = {"fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 1.0, 1.0]}


def test_only_valid_roc_curves_are_drawn() -> None:
    assert valid_roc(GOOD_ROC)
    assert not valid_roc(None) and not valid_roc({"fpr": [], "tpr": []})
    assert not valid_roc({"fpr": [0.0, 1.0], "tpr": [0.0]})  # lengths differ
    assert not valid_roc({"fpr": [0.0, 0.6, 0.4, 1.0], "tpr": [0.0, 0.5, 0.7, 1.0]})  # goes back
    assert not valid_roc({"fpr": [0.2, 1.0], "tpr": [0.0, 1.0]})  # does not start at (0, 0)


def test_evaluation_page_shows_the_test_metrics(tmp_path: Path) -> None:
    view, session = MagicMock(), TrainingSession()
    session.new_run(tmp_path / "run1")
    metrics_file(tmp_path / "run1", {"a": GOOD_ROC, "b": None})
    p = EvaluatePresenter(view, session)
    p.page_shown()
    e = view.show_evaluation.call_args.args[0]
    assert "Test split: 4 images of 4 patients." in e.headline and "Accuracy 75.0%." in e.headline
    assert "Very few test images" in e.headline
    assert e.row_names == ["a", "b", "Macro average"] and e.rows[2][3] == "0.667" and e.rows[0][5] == "0.500 – 1.000"
    assert list(e.roc) == ["a"]  # b has no curve (one class only in the test part): not drawn
    assert e.confusion.values == [[1, 1], [0, 2]] and e.confusion_labels == []
    assert e.misclassified == [("/d/a/1.png", "a → b (80%)", "/d/a/1.png\ntrue: a\npredicted: b")]
    view.set_name.assert_called_with("run1")
    view.show_saving.assert_called_with(True)


def test_multilabel_has_one_matrix_per_label(tmp_path: Path) -> None:
    metrics = metrics_file(tmp_path / "run", {}, multilabel=True)
    e = evaluation(metrics)
    assert e.confusion is None and e.confusion_labels == ["a", "b"] and e.columns[-1] == "Threshold"
    spec = label_matrix(metrics, "b")
    assert spec.values == [[2, 0], [1, 1]] and spec.rows == ["not b", "b"]


def test_save_then_open_an_image_with_the_saved_model(tmp_path: Path) -> None:
    view, session, link = MagicMock(), TrainingSession(), MagicMock()
    session.new_run(tmp_path / "run1")
    metrics_file(tmp_path / "run1", {})
    link.open_image.return_value = True
    link.model_saved.return_value = True
    p = EvaluatePresenter(view, session, link)
    p.open_image("/d/a/1.png")
    assert "Save the model to the library" in last_message(view)[0]
    link.predict_when_shown.assert_not_called()

    p.save("  ")
    p.save("again")  # a second press while saving: ignored
    view.start_save.assert_called_once_with(tmp_path / "run1" / "model.safetensors", "run1")
    p.save_failed("The library folder is read-only.")
    assert last_message(view) == ("The library folder is read-only.", True)
    view.show_saving.assert_called_with(True)
    p.save("mine")
    p.saved("mine", tmp_path / "lib" / "mine.safetensors")
    link.model_saved.assert_called_once_with("mine")
    assert last_message(view)[0] == "Saved as 'mine' in the model library and chosen in the analysis panel."
    p.open_image("/d/a/1.png")
    link.predict_when_shown.assert_called_once_with("/d/a/1.png", "mine")


def test_evaluation_says_not_estimable_instead_of_a_number_and_names_the_macro_rule() -> None:
    """Too few positives: the AUROC cell says why there is no value (never 0.000), the macro rule is shown."""
    from app.training.evaluate_presenter import evaluation
    from ml.training.metrics import MACRO_RULE

    note = "not estimable (n = 1 positive, 1 negative)"
    test = {"labels": ["a", "b"], "task": "multiclass", "n_images": 2, "n_patients": 2, "accuracy": 1.0,
            "per_class": {"a": {"precision": 1.0, "auroc": None, "auroc_note": note, "auroc_ci95": None,
                                "auroc_ci95_note": note, "support": 1},
                          "b": {"precision": 1.0, "auroc": None, "auroc_note": note, "support": 1}},
            "macro": {"precision": 1.0, "auroc": None}, "macro_rule": MACRO_RULE,
            "confusion_matrix": [[1, 0], [0, 1]], "roc": {}}
    e = evaluation({"test": test})
    auroc, ci = e.columns.index("AUROC"), e.columns.index("AUROC 95% CI")
    assert e.rows[0][auroc] == note and e.rows[0][ci] == note
    assert "0.000" not in " ".join(e.rows[0])
    assert "zero_division=0" in e.headline


def test_evaluation_shows_the_reliability_diagram_ece_and_operating_point(tmp_path: Path) -> None:
    """metrics.json's calibration (fitted on validation) and operating point reach the page as a diagram,
    ECE before/after with the split named, and how the operating point was chosen."""
    bins = {"mean_predicted": [0.15, 0.85], "fraction_positive": [0.3, 0.6], "count": [5, 5]}
    better = {"mean_predicted": [0.25, 0.7], "fraction_positive": [0.3, 0.6], "count": [5, 5]}
    metrics = metrics_file(tmp_path / "run", {"a": GOOD_ROC})
    metrics["calibration"] = {
        "split": "validation", "n": 12, "temperature": 2.5, "ece_before": 0.21, "ece_after": 0.04,
        "reliability_before": bins, "reliability_after": better,
        "test": {"split": "test", "n": 10, "ece_before": 0.2, "ece_after": 0.08,
                 "reliability_before": bins, "reliability_after": better},
    }  # fmt: skip
    metrics["operating_point"] = {
        "rule": "Youden's J", "split": "validation", "threshold": 0.42,
        "text": "operating point: Youden's J on validation, threshold 0.420 on P(b)",
        "test": {"threshold": 0.42, "sensitivity": 0.8, "specificity": 0.75},
    }  # fmt: skip
    e = evaluation(metrics)
    assert e.reliability is not None and e.reliability.title == "Reliability (test split)"
    assert e.reliability.curves == {"before": ([0.15, 0.85], [0.3, 0.6]), "after temperature": ([0.25, 0.7], [0.3, 0.6])}
    assert "temperature 2.50 fitted on the validation split" in e.calibration_text
    assert "on validation (n = 12) 0.210 before, 0.040 after" in e.calibration_text
    assert "search bound" not in e.calibration_text
    metrics["calibration"]["at_bound"] = True
    assert "search bound: too few validation images" in evaluation(metrics).calibration_text
    assert "on the test split 0.200 before, 0.080 with that temperature (n = 10)" in e.calibration_text
    assert e.operating_text.startswith("Operating point: Youden's J on validation, threshold 0.420 on P(b)")
    assert "sensitivity 0.80, specificity 0.75" in e.operating_text

    # nothing fitted (one-class validation): no diagram, the reason instead of numbers
    metrics["calibration"] = {"split": "validation", "temperature": None,
                              "note": "not fitted: the validation split has one class only"}  # fmt: skip
    metrics["operating_point"] = {"split": "validation", "text": "operating point: not fitted: one class"}
    e = evaluation(metrics)
    assert e.reliability is None
    assert e.calibration_text == "Calibration: not fitted: the validation split has one class only."
    assert e.operating_text == "Operating point: not fitted: one class."
    assert evaluation(metrics_file(tmp_path / "old", {})).calibration_text == ""  # older runs: nothing shown
