"""Wizard page 5's rules, Qt-free: what the test metrics say, saving the model, opening an image.

The view (:class:`app.training.page_evaluate.EvaluatePage`) renders an :class:`EvaluationView`; the
rest of the application is reached through an :class:`AnalysisLink` (open an image in the viewer,
show a saved model in the analysis panel and run it), never through the main window's attributes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from app.training.session import TrainingSession

COLUMNS = ["Precision", "Recall (sensitivity)", "Specificity", "F1", "AUROC", "AUROC 95% CI", "Images"]
KEYS = ["precision", "recall", "specificity", "f1", "auroc"]
FEW_TEST_IMAGES = 30

Matrix = list[list[Any]]


@dataclass(frozen=True)
class HeatmapSpec:
    values: Matrix
    rows: list[str]
    cols: list[str]


@dataclass(frozen=True)
class ReliabilitySpec:
    """Reliability diagram: mean predicted probability (x) against observed frequency (y) per bin."""

    title: str
    curves: dict[str, tuple[list[float], list[float]]]  # name -> (x, y), e.g. "before" / "after temperature"
    counts: dict[str, list[int]]


@dataclass(frozen=True)
class EvaluationView:
    headline: str
    columns: list[str]
    row_names: list[str]
    rows: list[list[str]]
    prf: HeatmapSpec
    confusion: HeatmapSpec | None  # None: multi-label, one 2x2 matrix per label (confusion_labels)
    confusion_labels: list[str]
    roc: dict[str, dict[str, list[float]]]  # label -> {"fpr": [...], "tpr": [...]}, valid curves only
    auroc: dict[str, float | None]
    misclassified: list[tuple[str, str, str]] = field(default_factory=list)  # (path, caption, tooltip)
    reliability: ReliabilitySpec | None = None  # None: nothing to draw (no calibration in metrics.json)
    calibration_text: str = ""  # temperature, ECE before/after and on which split
    operating_text: str = ""  # the operating point and how it was chosen


class AnalysisLink(Protocol):
    def open_image(self, path: str) -> bool: ...
    def model_saved(self, name: str) -> bool: ...
    def predict_when_shown(self, path: str, model_name: str) -> None: ...


class EvaluateView(Protocol):
    def show_evaluation(self, evaluation: EvaluationView) -> None: ...
    def show_confusion(self, spec: HeatmapSpec) -> None: ...
    def show_message(self, text: str, error: bool = False) -> None: ...
    def show_saving(self, can_save: bool) -> None: ...
    def set_name(self, name: str) -> None: ...
    def start_save(self, model_path: Path, name: str) -> None: ...


def _num(v: Any, fmt: str = "{:.3f}") -> str:
    return "–" if v is None else fmt.format(v)


def headline(metrics: dict[str, Any]) -> str:
    test = metrics.get("test") or {}
    parts = [f"Test split: {test.get('n_images')} images of {test.get('n_patients')} patients."]
    if test.get("loss") is not None:
        parts.append(f"Loss {test['loss']:.4f}.")
    if test.get("accuracy") is not None:
        what = "Accuracy (per label)" if test.get("task") == "multilabel" else "Accuracy"
        parts.append(f"{what} {test['accuracy'] * 100:.1f}%.")
    if metrics.get("best_epoch"):
        parts.append(f"Best epoch {metrics['best_epoch']} by {metrics.get('monitor')}.")
    if (test.get("n_images") or 0) < FEW_TEST_IMAGES:
        parts.append("Very few test images: these numbers are rough (see the confidence intervals).")
    rule = test.get("macro_rule") or metrics.get("macro_rule")
    if rule:
        parts.append(f"Macro average: {rule}.")
    return " ".join(parts)


def valid_roc(points: Any) -> bool:
    """A drawable ROC curve: at least two points from (0, 0) to (1, 1), never going back, inside [0, 1]."""
    if not isinstance(points, dict):
        return False
    fpr, tpr = points.get("fpr") or [], points.get("tpr") or []
    if len(fpr) < 2 or len(fpr) != len(tpr):
        return False
    inside = all(0.0 <= v <= 1.0 for v in [*fpr, *tpr])
    rising = all(b >= a for xs in (fpr, tpr) for a, b in zip(xs, xs[1:], strict=False))
    return inside and rising and (fpr[0], tpr[0]) == (0, 0) and (fpr[-1], tpr[-1]) == (1, 1)


def misclassified_entries(metrics: dict[str, Any]) -> list[tuple[str, str, str]]:
    entries = []
    for m in metrics.get("misclassified") or []:
        truth = m.get("label") or ", ".join(m.get("labels") or []) or "none"
        pred = m.get("predicted")
        pred = (", ".join(pred) or "none") if isinstance(pred, list) else pred
        prob = f" ({m['probability'] * 100:.0f}%)" if m.get("probability") is not None else ""
        entries.append((m["path"], f"{truth} → {pred}{prob}", f"{m['path']}\ntrue: {truth}\npredicted: {pred}"))
    return entries


def label_matrix(metrics: dict[str, Any], label: str) -> HeatmapSpec | None:
    """The 2x2 confusion matrix of one label of a multi-label model."""
    cm = (metrics.get("test") or {}).get("confusion_matrix")
    if isinstance(cm, dict) and label in cm:
        names = [f"not {label}", label]
        return HeatmapSpec(cm[label], names, names)
    return None


def _ece(v: Any) -> str:
    return "–" if v is None else f"{v:.3f}"


def reliability(metrics: dict[str, Any]) -> ReliabilitySpec | None:
    """The test split's reliability curves before and after the validation temperature (the validation
    split's when the test part has none)."""
    c = metrics.get("calibration") or {}
    part, split = (c["test"], "test") if isinstance(c.get("test"), dict) else (c, "validation")
    curves, counts = {}, {}
    for key, name in (("reliability_before", "before"), ("reliability_after", "after temperature")):
        bins = part.get(key)
        if isinstance(bins, dict) and bins.get("mean_predicted"):
            curves[name] = (list(bins["mean_predicted"]), list(bins["fraction_positive"]))
            counts[name] = list(bins.get("count") or [])
    if not curves:
        return None
    return ReliabilitySpec(f"Reliability ({split} split)", curves, counts)


def calibration_text(metrics: dict[str, Any]) -> str:
    c = metrics.get("calibration") or {}
    if not c:
        return ""
    if c.get("temperature") is None:
        return f"Calibration: {c.get('note') or 'not fitted'}."
    text = (f"Calibration: temperature {c['temperature']:.2f} fitted on the validation split; expected calibration "
            f"error (ECE) on validation{_n(c)} {_ece(c.get('ece_before'))} before, {_ece(c.get('ece_after'))} after")  # fmt: skip
    t = c.get("test")
    if isinstance(t, dict):
        text += (f"; on the test split {_ece(t.get('ece_before'))} before, {_ece(t.get('ece_after'))} with that "
                 f"temperature (n = {t.get('n')})")  # fmt: skip
    text += "."
    if c.get("at_bound"):
        text += " The temperature is at its search bound: too few validation images for a reliable fit."
    return text


def _n(part: dict[str, Any]) -> str:
    return f" (n = {part['n']})" if part.get("n") is not None else ""


def operating_text(metrics: dict[str, Any]) -> str:
    op = metrics.get("operating_point") or {}
    if not op.get("text"):
        return ""
    text = str(op["text"])
    text = text[0].upper() + text[1:]
    t = op.get("test")
    if isinstance(t, dict) and t.get("sensitivity") is not None:
        text += f"; on the test split: sensitivity {t['sensitivity']:.2f}, specificity {_num(t.get('specificity'), '{:.2f}')}"
    return text + "."


def evaluation(metrics: dict[str, Any]) -> EvaluationView:
    test = metrics.get("test") or {}
    labels = list(test.get("labels") or [])
    multilabel = test.get("task") == "multilabel"
    per_class = test.get("per_class") or {}
    named = [(label, per_class.get(label, {})) for label in labels] + [("Macro average", test.get("macro") or {})]
    rows = []
    for _name, m in named:
        ci = m.get("auroc_ci95")
        values = [_num(m.get(k)) for k in KEYS]
        if m.get("auroc") is None and m.get("auroc_note"):
            values[KEYS.index("auroc")] = str(m["auroc_note"])  # "not estimable (n = ...)", never 0.000
        values.append(f"{ci[0]:.3f} – {ci[1]:.3f}" if ci else str(m.get("auroc_ci95_note") or "–"))
        values.append(str(m.get("support", "")) if "support" in m else "")
        if multilabel:
            values.append(_num(m.get("threshold"), "{:.2f}"))
        rows.append(values)
    prf = HeatmapSpec([[per_class.get(x, {}).get(k) for k in ("precision", "recall", "f1")] for x in labels],
                      labels, ["precision", "recall", "F1"])  # fmt: skip
    cm = test.get("confusion_matrix")
    per_label = multilabel and isinstance(cm, dict)
    roc = {label: pts for label, pts in (test.get("roc") or {}).items() if valid_roc(pts)}
    return EvaluationView(
        headline=headline(metrics),
        columns=COLUMNS + (["Threshold"] if multilabel else []),
        row_names=[n for n, _ in named],
        rows=rows,
        prf=prf,
        confusion=None if per_label else HeatmapSpec(cm or [], labels, labels),
        confusion_labels=list(cm) if per_label else [],
        roc=roc,
        auroc={x: per_class.get(x, {}).get("auroc") for x in labels},
        misclassified=misclassified_entries(metrics),
        reliability=reliability(metrics),
        calibration_text=calibration_text(metrics),
        operating_text=operating_text(metrics),
    )


class EvaluatePresenter:
    def __init__(self, view: EvaluateView, session: TrainingSession, link: AnalysisLink | None = None) -> None:
        self.view = view
        self.session = session
        self.link = link
        self.saving = False

    @property
    def metrics(self) -> dict[str, Any] | None:
        return self.session.evaluation.metrics

    def page_shown(self) -> None:
        run_dir = self.session.run.run_dir
        if run_dir is None:
            return
        try:
            metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            self.view.show_message(f"Cannot read the run's metrics ({exc}).", error=True)
            return
        self.session.evaluation.metrics = metrics
        self.view.show_evaluation(evaluation(metrics))
        if not self.session.evaluation.saved_name:
            self.view.set_name(run_dir.name)
        self.view.show_saving((run_dir / "model.safetensors").is_file())

    def confusion_label_chosen(self, label: str) -> None:
        spec = label_matrix(self.metrics or {}, label)
        if spec is not None:
            self.view.show_confusion(spec)

    # ------------------------------------------------------------------ save
    def save(self, name: str) -> None:
        run_dir = self.session.run.run_dir
        if run_dir is None or self.saving:
            return
        self.saving = True
        self.view.show_message("Saving…")
        self.view.show_saving(False)
        self.view.start_save(run_dir / "model.safetensors", name.strip() or run_dir.name)

    def save_failed(self, message: str) -> None:
        self.saving = False
        self.view.show_saving(True)
        self.view.show_message(message, error=True)

    def saved(self, name: str, path: str | Path) -> None:
        self.saving = False
        self.session.evaluation.saved_name, self.session.evaluation.saved_path = name, Path(path)
        chosen = self.link is not None and self.link.model_saved(name)
        self.view.show_message(f"Saved as '{name}' in the model library"
                               + (" and chosen in the analysis panel." if chosen else "."))  # fmt: skip

    # ------------------------------------------------------------------ open in the viewer
    def open_image(self, path: str) -> None:
        """Show a misclassified image in the viewer, then run the saved model with its heatmap."""
        if self.link is None or not self.link.open_image(path):
            return
        name = self.session.evaluation.saved_name
        if not name:
            self.view.show_message("Opened in the viewer. Save the model to the library to see its prediction "
                                   "and heatmap there.")  # fmt: skip
            return
        self.link.predict_when_shown(path, name)
