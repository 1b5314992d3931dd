"""The "Evaluate on my data" presenter over a mock view: no display, no Qt, no torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from app.training.site_presenter import SiteOutcome, SitePresenter, SiteSettings, headline, outcome_rows

REPO = Path(__file__).resolve().parents[1]


def test_site_presenter_imports_neither_qt_nor_torch() -> None:
    code = (
        "import sys\n"
        "import app.training.site_presenter\n"
        "print(sorted(m for m in ('torch', 'PySide6', 'pyqtgraph') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


class FakeView:
    def __init__(self) -> None:
        self.settings = SiteSettings()
        self.models: list[tuple[str, str]] = []
        self.selected: str | None = None
        self.message = ("", False)
        self.state = (False, False)
        self.outcome: SiteOutcome | None = None
        self.started: list[Any] = []

    def read_settings(self) -> SiteSettings:
        return self.settings

    def show_models(self, items: list[tuple[str, str]], selected: str | None) -> None:
        self.models, self.selected = items, selected
        self.settings.model = selected

    def show_message(self, text: str, error: bool = False) -> None:
        self.message = (text, error)

    def set_state(self, can_run: bool, busy: bool) -> None:
        self.state = (can_run, busy)

    def show_outcome(self, outcome: SiteOutcome | None) -> None:
        self.outcome = outcome

    def start_job(self, request: Any) -> None:
        self.started.append(request)


def model(name: str, default: bool = False) -> Any:
    return SimpleNamespace(name=name, path=Path(f"/lib/{name}.safetensors"), default=default,
                           manifest=SimpleNamespace(version="1.0"))  # fmt: skip


def presenter(models: list[Any]) -> tuple[SitePresenter, FakeView]:
    view = FakeView()
    p = SitePresenter(view, models=lambda: list(models))
    p.refresh_models()
    return p, view


def summary(ci: list[float] | None = None) -> dict[str, Any]:
    def part(ece: float, thr: float, sens: float, spec: float) -> dict[str, Any]:
        per = {"auroc": 0.417, "auroc_ci95": ci, "auroc_note": None, "support": 3, "threshold": thr,
               "auroc_ci95_note": None if ci else "not estimable (n = 3 positive, 4 negative)",
               "sensitivity": sens, "specificity": spec}  # fmt: skip
        return {"n_images": 7, "n_patients": 7, "accuracy": 0.571, "macro_auroc": 0.417, "ece": ece,
                "per_label": {"NORMAL": {"auroc": None, "auroc_note": "not estimable (n = 0 positive, 7 negative)"},
                              "PNEUMONIA": per}}  # fmt: skip

    return {
        "temperature": {"before": 1.0, "fitted": 2.5, "after": 2.5},
        "operating_points": {"rule": "sensitivity >= 0.9"},
        "site_data": {
            "n_images": 16,
            "n_patients": 15,
            "patient_ids": "file names",
            "unreadable": 0,
            "out_of_scope": 1,
            "calibration_half": {"images": 9, "patients": 8},
            "check_half": {"images": 7, "patients": 7},
        },  # fmt: skip
        "check_before": part(0.21, 0.5, 0.0, 1.0),
        "check_after": part(0.05, 0.4986, 0.667, 0.25),
    }


def test_default_model_is_preselected_and_run_waits_for_an_existing_folder(tmp_path: Path) -> None:
    p, view = presenter([model("other"), model("cxr-default-pneumonia", default=True)])
    assert view.selected == "cxr-default-pneumonia"
    assert [n for n, _ in view.models] == ["other", "cxr-default-pneumonia"]
    assert "default" in dict(view.models)["cxr-default-pneumonia"]
    assert view.state == (False, False) and not view.message[1]  # nothing chosen yet: a hint, not an error
    view.settings.data = str(tmp_path / "missing")
    p.settings_changed()
    assert view.state == (False, False) and view.message == (f"{tmp_path / 'missing'} does not exist.", True)
    assert p.run() is False and not view.started
    view.settings.data = str(tmp_path)
    p.settings_changed()
    assert view.state == (True, False) and not view.message[1]


def test_no_model_installed_says_so_and_cannot_run(tmp_path: Path) -> None:
    p, view = presenter([])
    view.settings.data = str(tmp_path)
    p.settings_changed()
    assert view.state == (False, False)
    assert view.message == ("Choose an installed model.", True)
    assert p.run() is False


def test_a_file_that_is_not_a_csv_and_a_bad_target_are_refused(tmp_path: Path) -> None:
    p, view = presenter([model("m", default=True)])
    (tmp_path / "x.png").write_bytes(b"")
    view.settings.data = str(tmp_path / "x.png")
    assert "folder of labelled images or a CSV" in (p.problem() or "")
    (tmp_path / "labels.csv").write_text("path,label\n")
    view.settings.data = str(tmp_path / "labels.csv")
    assert p.problem() is None
    view.settings.use_target, view.settings.target = True, 1.0
    assert p.problem() == "The target sensitivity must be between 0 and 1."


def test_run_hands_the_job_one_request_and_is_busy_until_done(tmp_path: Path) -> None:
    p, view = presenter([model("m", default=True)])
    view.settings.data, view.settings.use_target, view.settings.target = str(tmp_path), True, 0.85
    assert p.run() is True
    (request,) = view.started
    assert (request.model_name, request.model_path, request.data) == (
        "m",
        "/lib/m.safetensors",
        str(tmp_path),
    )
    assert request.target_sensitivity == 0.85
    assert view.state == (False, True) and p.busy
    assert p.run() is False and len(view.started) == 1  # a second Run while busy starts nothing
    p.settings_changed()
    assert view.state == (False, True)  # editing while busy does not re-enable Run
    p.failed("The data is multilabel but the model m is multiclass.")
    p.done()
    assert not p.busy and view.state == (True, False)
    assert view.message == ("The data is multilabel but the model m is multiclass.", True)  # kept after done


def test_youden_when_no_target_and_cancel_saves_nothing(tmp_path: Path) -> None:
    p, view = presenter([model("m", default=True)])
    view.settings.data, view.settings.target = str(tmp_path), 0.85  # the box's value, not ticked
    p.run()
    assert view.started[0].target_sensitivity is None
    p.cancelled()
    p.done()
    assert view.message == ("Cancelled: no new version was saved.", False) and p.new_version() is None


def test_outcome_rows_say_before_and_after_with_cis_or_why_not() -> None:
    rows = {r[0]: r[1:] for r in outcome_rows(summary())}
    assert rows["Temperature"] == ["1", "2.5"]
    assert rows["Expected calibration error (ECE)"] == ["0.210", "0.050"]
    assert rows["PNEUMONIA: AUROC, 95% CI"][1] == "0.417 (95% CI not estimable (n = 3 positive, 4 negative))"
    assert rows["NORMAL: AUROC, 95% CI"] == ["not estimable (n = 0 positive, 7 negative)"] * 2
    assert rows["PNEUMONIA: operating point"] == ["0.500", "0.499"]
    assert rows["PNEUMONIA: sensitivity"] == ["0.000", "0.667"]
    assert rows["PNEUMONIA: specificity"] == ["1.000", "0.250"]
    with_ci = {r[0]: r[1:] for r in outcome_rows(summary(ci=[0.81, 0.97]))}
    assert with_ci["PNEUMONIA: AUROC, 95% CI"][1] == "0.417 [0.810, 0.970]"
    text = headline(summary())
    assert "check half (7 images, 7 patients)" in text and "calibration half (9 images, 8 patients)" in text
    assert "sensitivity >= 0.9" in text and "1 out of scope" in text


def test_finished_shows_the_new_version_and_lists_it_without_losing_the_choice(tmp_path: Path) -> None:
    models = [model("m", default=True)]
    p, view = presenter(models)
    view.settings.data = str(tmp_path)
    p.run()
    outcome = SiteOutcome("m-site", "/lib/m-site.safetensors", "m", "/lib/m-site.calibration.png",
                          ["Check half", "Before", "After"], outcome_rows(summary()), "h", True)  # fmt: skip
    models.append(model("m-site"))
    p.finished(outcome)
    p.done()
    assert view.outcome is outcome and p.new_version() == "m-site"
    assert [n for n, _ in view.models] == ["m", "m-site"] and view.selected == "m"
    text, error = view.message
    assert not error and "new version 'm-site'" in text and "original m is unchanged" in text
    changed = SiteOutcome("m-site-2", "/x", "m", "/r.png", [], [], "h", source_unchanged=False)
    p.finished(changed)
    assert view.message[1] is True and "CHANGED" in view.message[0]
