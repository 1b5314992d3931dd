"""The "Evaluate on my data" dialog's rules, Qt-free: which model, which data, when it may run, and
what the outcome says.

The view (:class:`app.training.site_dialog.SiteDialog`) implements :class:`SiteView`: it reads its
widgets into :class:`SiteSettings`, runs :func:`run_site_calibration` on a worker
(``start_job``) and hands the outcome back through ``finished`` / ``failed`` / ``cancelled`` /
``done``. The work is ``cxr calibrate``'s (:func:`ml.training.site_calibration.calibrate_on_site`):
a patient-level split of the site data into a calibration half and a check half, a temperature and
operating points fitted on the first, before/after figures on the second, a NEW library version
(the source model file is only read) and a PNG report. torch loads inside the job only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ml.errors import CxrError


@dataclass
class SiteSettings:
    """What the dialog's widgets say."""

    model: str | None = None  # an installed model's name
    data: str = ""  # a labelled folder (one sub-folder per class) or a CSV
    use_target: bool = False  # operating points at a target sensitivity (else Youden's J)
    target: float = 0.9

    @property
    def target_sensitivity(self) -> float | None:
        return self.target if self.use_target else None


@dataclass(frozen=True)
class SiteRequest:
    model_name: str
    model_path: str
    data: str
    target_sensitivity: float | None = None
    n_boot: int = 200


@dataclass(frozen=True)
class SiteOutcome:
    new_model: str  # the new library version's name
    new_path: str
    source_model: str
    report_path: str
    columns: list[str]
    rows: list[list[str]]  # figure, before, after (check half)
    headline: str  # what was fitted on what, in words
    source_unchanged: bool  # the source file's hash after the run equals the one before
    summary: dict[str, Any] = field(default_factory=dict, repr=False)


class SiteView(Protocol):
    def read_settings(self) -> SiteSettings: ...
    def show_models(self, items: list[tuple[str, str]], selected: str | None) -> None: ...
    def show_message(self, text: str, error: bool = False) -> None: ...
    def set_state(self, can_run: bool, busy: bool) -> None: ...
    def show_outcome(self, outcome: SiteOutcome | None) -> None: ...
    def start_job(self, request: SiteRequest) -> None: ...


# ---------------------------------------------------------------------------- figures in words


def _num(v: Any) -> str:
    return "n/a" if v is None else f"{float(v):.3f}"


def _auroc_cell(stats: dict[str, Any]) -> str:
    """ "0.912 [0.85, 0.96]"; "0.417 (CI not estimable (n = 3 positive, 4 negative))"; or the note."""
    if stats.get("auroc") is None:
        return str(stats.get("auroc_note") or "n/a")
    ci = stats.get("auroc_ci95")
    if ci:
        return f"{stats['auroc']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
    note = stats.get("auroc_ci95_note")
    return f"{stats['auroc']:.3f} (95% CI {note})" if note else f"{stats['auroc']:.3f}"


def outcome_rows(summary: dict[str, Any]) -> list[list[str]]:
    """(figure, before, after) on the check half, from a site-calibration summary."""
    b, a = summary["check_before"], summary["check_after"]
    t = summary["temperature"]
    rows = [["Temperature", f"{t['before']:g}", f"{t['after']:g}"],
            ["Expected calibration error (ECE)", _num(b.get("ece")), _num(a.get("ece"))],
            ["Macro AUROC", _num(b.get("macro_auroc")), _num(a.get("macro_auroc"))]]  # fmt: skip
    if a.get("accuracy") is not None:
        rows.append(["Accuracy (top class)", _num(b.get("accuracy")), _num(a.get("accuracy"))])
    for label, after in a["per_label"].items():
        before = b["per_label"].get(label, {})
        rows.append([f"{label}: AUROC, 95% CI", _auroc_cell(before), _auroc_cell(after)])
        if after.get("threshold") is not None or before.get("threshold") is not None:
            rows.append(
                [f"{label}: operating point", _num(before.get("threshold")), _num(after.get("threshold"))]
            )
        for key in ("sensitivity", "specificity"):
            if after.get(key) is not None or before.get(key) is not None:
                rows.append([f"{label}: {key}", _num(before.get(key)), _num(after.get(key))])
    return rows


def headline(summary: dict[str, Any]) -> str:
    site = summary["site_data"]
    cal, chk = site["calibration_half"], site["check_half"]
    return (f"{site['n_images']} images of {site['n_patients']} patients (patient IDs: {site['patient_ids']}). "
            f"Fitted on the calibration half ({cal['images']} images, {cal['patients']} patients); every figure "
            f"below is on the check half ({chk['images']} images, {chk['patients']} patients), which was not "
            f"used for fitting. Operating points: {summary['operating_points']['rule']}. "
            f"{site['unreadable']} unreadable, {site['out_of_scope']} out of scope.")  # fmt: skip


# ---------------------------------------------------------------------------- the job (worker thread)


def run_site_calibration(request: SiteRequest, progress: Any = None, cancel: Any = None) -> SiteOutcome:
    """Calibrate, install the new version, write the PNG report (see the module docstring)."""
    from ml.lazy import ensure_torch

    ensure_torch()  # a worker thread: the first torch import is serialised
    from ml.cli_calibrate import write_report
    from ml.fileio import sha256_file
    from ml.training.site_calibration import calibrate_on_site, install_site_version

    before = sha256_file(request.model_path)
    result = calibrate_on_site(request.model_path, request.data, target_sensitivity=request.target_sensitivity,
                               n_boot=request.n_boot, progress=progress, cancel=cancel)  # fmt: skip
    if cancel is not None:
        cancel.check()
    installed = install_site_version(result)
    report = write_report(
        Path(installed.path).with_suffix(".calibration.png"), result.summary, installed.name
    )
    return SiteOutcome(
        new_model=installed.name, new_path=str(installed.path), source_model=request.model_name,
        report_path=str(report), columns=["Check half", "Before", "After"], rows=outcome_rows(result.summary),
        headline=headline(result.summary), source_unchanged=sha256_file(request.model_path) == before,
        summary=result.summary,
    )  # fmt: skip


def installed_models() -> list[Any]:
    """The library's usable models (the shipped default installed on first use, no network)."""
    from ml.models import library

    try:
        library.ensure_default_model()
    except CxrError:
        pass  # no default: the list is what is installed
    return [m for m in library.list_models() if m.manifest is not None and m.error is None]


# ---------------------------------------------------------------------------- the presenter


class SitePresenter:
    def __init__(self, view: SiteView, models: Callable[[], list[Any]] = installed_models) -> None:
        self.view = view
        self._list = models
        self.models: dict[str, Any] = {}
        self.busy = False
        self.outcome: SiteOutcome | None = None

    # ------------------------------------------------------------------ models
    def refresh_models(self, select: str | None = None, quiet: bool = False) -> None:
        """List the installed models (``quiet``: keep the message shown, e.g. a run's outcome)."""
        try:
            listed = self._list()
        except CxrError as exc:
            listed = []
            self.view.show_message(str(exc), error=True)
        self.models = {m.name: m for m in listed}
        current = self.view.read_settings().model
        default = next((m.name for m in listed if getattr(m, "default", False)), None)
        chosen = next((n for n in (select, current, default) if n in self.models), None)
        if chosen is None and listed:
            chosen = listed[0].name
        self.view.show_models([(m.name, f"{m.name} ({m.manifest.version})" + (" - default" if m.default else ""))
                               for m in listed], chosen)  # fmt: skip
        if not listed:
            self.view.show_message(
                "No model is installed: import one in Analysis > Model library.", error=True
            )
        if quiet:
            self.view.set_state(can_run=self.problem() is None, busy=False)
        else:
            self.settings_changed()

    # ------------------------------------------------------------------ validation
    def problem(self, s: SiteSettings | None = None) -> str | None:
        """Why Run is not possible now (None: it is)."""
        s = s or self.view.read_settings()
        if not s.model or s.model not in self.models:
            return "Choose an installed model."
        if not s.data.strip():
            return "Choose a labelled folder (one sub-folder per class) or a CSV file."
        if not os.path.exists(s.data):
            return f"{s.data} does not exist."
        if os.path.isfile(s.data) and not s.data.lower().endswith(".csv"):
            return "The data must be a folder of labelled images or a CSV file."
        if s.use_target and not 0.0 < s.target < 1.0:
            return "The target sensitivity must be between 0 and 1."
        return None

    def settings_changed(self) -> None:
        if self.busy:
            return
        why = self.problem()
        if why is None:
            self.view.show_message("Press Run: the data is split by patient into a calibration half and a "
                                   "check half; the model file itself is never changed.")  # fmt: skip
        else:
            self.view.show_message(why, error=bool(self.view.read_settings().data.strip()) or not self.models)
        self.view.set_state(can_run=why is None, busy=False)

    # ------------------------------------------------------------------ run
    def run(self) -> bool:
        if self.busy:
            return False
        s = self.view.read_settings()
        why = self.problem(s)
        if why is not None:
            self.view.show_message(why, error=True)
            self.view.set_state(can_run=False, busy=False)
            return False
        model = self.models[s.model]  # type: ignore[index]
        self.busy = True
        self.outcome = None
        self.view.show_outcome(None)
        self.view.show_message(f"Checking {s.model} on {Path(s.data).name}…")
        self.view.set_state(can_run=False, busy=True)
        self.view.start_job(SiteRequest(s.model, str(model.path), s.data, s.target_sensitivity))  # type: ignore[arg-type]
        return True

    def finished(self, outcome: SiteOutcome) -> None:
        self.outcome = outcome
        self.view.show_outcome(outcome)
        kept = "unchanged" if outcome.source_unchanged else "CHANGED (this should never happen)"
        self.view.show_message(f"Saved as a new version '{outcome.new_model}'; the original {outcome.source_model} "
                               f"is {kept}. Report: {outcome.report_path}", error=not outcome.source_unchanged)  # fmt: skip

    def failed(self, message: str) -> None:
        self.view.show_message(message, error=True)

    def cancelled(self) -> None:
        self.view.show_message("Cancelled: no new version was saved.")

    def done(self) -> None:
        """Whatever the outcome: not busy; the new version (if any) is listed, the chosen model kept."""
        self.busy = False
        self.refresh_models(select=self.view.read_settings().model, quiet=True)

    def new_version(self) -> str | None:
        """The model to select in the analysis panel ("Use this version"); None before a run."""
        return self.outcome.new_model if self.outcome is not None else None


__all__ = ["SiteOutcome", "SitePresenter", "SiteRequest", "SiteSettings", "SiteView", "headline",
           "installed_models", "outcome_rows", "run_site_calibration"]  # fmt: skip
