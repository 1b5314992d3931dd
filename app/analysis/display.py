"""What the analysis panel shows for the image in the viewer: its result and heatmap, or nothing.

A result belongs to the image (path, frame) it was computed on; so does a heatmap. Qt-free; part of
:class:`app.analysis.presenter.AnalysisPresenter`, sharing its :class:`AnalysisState`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.analysis.state import AnalysisState, AnalysisView, ImageSource, Key, result_key
from ml.errors import CxrError
from ml.inference.scope import BANNER


@dataclass(frozen=True)
class ReportInputs:
    prediction: Any
    heatmap: Any  # None unless computed on the image shown
    model_version: str
    device: str
    validation: str  # e.g. "test split, 150 images / 83 patients: accuracy 0.940, macro AUROC 0.964"
    intended_use: str
    show_out_of_scope: bool = False  # the user chose "Show anyway (research use)"
    evidence: tuple[str, ...] = ()  # the heatmap's method/layer, gating, faithfulness (app.analysis.evidence)
    regions: tuple[Any, ...] = ()  # outlines drawn over the map (ml.explain.contours.Region)


def out_of_scope(prediction: Any) -> bool:
    return prediction is not None and not getattr(prediction, "in_scope", True)


def scope_text(prediction: Any) -> str:
    """The banner for a prediction the out-of-scope guard flagged ("" when it is in scope)."""
    if not out_of_scope(prediction):
        return ""
    note = getattr(prediction, "scope_note", "")
    return f"{BANNER}." + (f" Why: {note}." if note else "")


_METRIC_NAMES = {"accuracy": "accuracy", "macro_auroc": "macro AUROC", "macro_f1": "macro F1",
                 "auroc": "AUROC", "sensitivity": "sensitivity", "specificity": "specificity"}  # fmt: skip


def validation_summary(manifest: Any) -> str:
    """The model's validation figures from its manifest, in one line ("" when none are recorded)."""
    provenance = getattr(manifest, "provenance", None)
    metrics = dict(getattr(provenance, "metrics", None) or {})
    for split in ("test", "val", "validation"):
        if isinstance(metrics.get(split), dict):
            where, figures = f"{split} split", metrics[split]
            break
    else:
        where, figures = "", metrics
    shown = [f"{_METRIC_NAMES[k]} {float(v):.3f}" for k, v in figures.items()
             if k in _METRIC_NAMES and isinstance(v, int | float) and not isinstance(v, bool)]  # fmt: skip
    if not shown:
        return ""
    n_images, n_patients = figures.get("n_images"), figures.get("n_patients")
    counts = ", ".join(x for x in (f"{n_images} images" if n_images else "",
                                   f"{n_patients} patients" if n_patients else "") if x)  # fmt: skip
    head = ", ".join(x for x in (where, counts) if x)
    return (f"{head}: " if head else "") + ", ".join(shown)


def intended_use(manifest: Any) -> str:
    extra = getattr(getattr(manifest, "provenance", None), "extra", None) or {}
    card = extra.get("model_card") if isinstance(extra, dict) else None
    return str(card.get("intended_use", "")) if isinstance(card, dict) else ""


class ResultDisplay:
    def __init__(
        self,
        state: AnalysisState,
        view: AnalysisView,
        images: ImageSource,
        status: Callable[[str], None],
        changed: Callable[[], None],
        show_heatmap: Callable[[Any], None] | None = None,
    ) -> None:
        self.state = state
        self.view = view
        self.images = images
        self.status = status  # a status line for the user
        self.changed = changed  # what is shown changed: the enabled state may have too
        self.show_heatmap = show_heatmap or view.show_heatmap  # the gate's way of drawing a map

    def current_key(self) -> Key | None:
        current = self.images.current()
        return result_key(*current) if current is not None else None

    def show_current(self, quiet: bool = False) -> None:
        s = self.state
        key = self.current_key()
        self.show_prediction(s.results.get(key) if key is not None else None, quiet)
        self.show_heatmap(s.heatmap if key is not None and key == s.heatmap_key else None)

    def show_prediction(self, prediction: Any, quiet: bool = False) -> None:
        s = self.state
        s.prediction = prediction
        hidden = out_of_scope(prediction) and not s.show_out_of_scope
        self.view.show_scope(scope_text(prediction), hidden)
        self.view.show_prediction(None if hidden else prediction)
        if prediction is not None and not quiet and out_of_scope(prediction):
            self.status(f"{Path(prediction.path).name}: {scope_text(prediction)}"
                        + (" Shown anyway (research use)." if not hidden else ""))  # fmt: skip
        elif prediction is not None and not quiet:
            top = ", ".join(prediction.positives) if prediction.task == "multilabel" else prediction.top_label
            note = getattr(prediction, "scope_note", "")
            self.status(f"{Path(prediction.path).name}: {top or 'no label above its threshold'} "
                        f"({prediction.model_name})." + (f" Scope check: {note}." if note else ""))  # fmt: skip
        self.changed()

    def batch_row_chosen(self, row: int) -> None:
        """A row of the batch list: show that image (its result follows), else its result, named."""
        s = self.state
        if s.batch is None or not 0 <= row < len(s.batch.predictions):
            return
        p = s.batch.predictions[row]
        if (p.path, p.frame) == self.current_key() or self.images.show_path(p.path):
            self.show_current()
        else:  # not open: show it by name (the report refuses a result of another image)
            self.show_prediction(p)

    def forget(self) -> None:
        s = self.state
        s.results, s.batch, s.heatmap, s.heatmap_key = {}, None, None, None
        self.view.show_batch(None)
        self.show_heatmap(None)
        self.show_prediction(None, quiet=True)

    def report_inputs(self) -> ReportInputs:
        """What the report of the image shown says besides the image (which the view renders)."""
        s = self.state
        p = s.prediction
        key = self.current_key()
        if p is None or key is None:
            raise CxrError("Run a model on an image first: there are no results to report.")
        if (p.path, p.frame) != key:
            raise CxrError("The results shown are for another image; run the model on this image first.")
        manifest = next((m.manifest for m in s.models if m.name == p.model_name), None)
        return ReportInputs(
            p, s.heatmap if s.heatmap_key == key else None, str(manifest.version) if manifest else "",
            s.loaded.device_label if s.loaded is not None else "", validation_summary(manifest),
            intended_use(manifest), s.show_out_of_scope,
        )  # fmt: skip

    def csv_inputs(self) -> tuple[list[Any], list[str] | None]:
        s = self.state
        if s.batch is not None and s.batch.predictions:
            return list(s.batch.predictions), s.batch.labels
        if s.prediction is not None:
            return [s.prediction], None
        raise CxrError("There are no results to export yet.")

    def export_stem(self, kind: str) -> str:
        s = self.state
        if kind == "csv" and s.batch is not None:
            return "batch"
        return Path(s.prediction.path).stem if s.prediction is not None else "results"


__all__ = ["ReportInputs", "ResultDisplay", "intended_use", "out_of_scope", "scope_text", "validation_summary"]
