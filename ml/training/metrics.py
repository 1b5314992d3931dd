"""Evaluation metrics with torchmetrics: accuracy, per-class precision, recall (sensitivity),
specificity, F1 and AUROC with a 95% bootstrap confidence interval that resamples patients (images
of one patient are not independent), macro averages, confusion matrix and ROC curve points.

Multi-class models are scored one-vs-rest per class on the arg-max prediction. Multi-label models use
one threshold per label (chosen on the validation split by :func:`choose_thresholds`, F1-optimal);
targets of -1 (unknown, e.g. CheXpert uncertain labels under the "ignore" policy) are left out of
that label's metrics.

Macro averages follow one rule, scikit-learn's default (:data:`MACRO_RULE`, also written into every
metrics file as ``macro_rule``): the unweighted mean over every class of the model (multi-label:
every label with at least one known target), a per-class precision, recall, specificity or F1 that
is undefined (e.g. precision of a class never predicted) counting as 0 - ``zero_division=0``. The
per-class value itself stays undefined (None, shown as "-"). The macro AUROC is the mean over the
classes where the AUROC is defined (scikit-learn refuses to compute it otherwise); ``macro_auroc_n``
says over how many.

Small samples are not dressed up as results: an AUROC needs at least one positive and one negative,
and its bootstrap interval at least :data:`MIN_FOR_CI` of each (and patients to resample);
otherwise the value is None and ``auroc_note`` / ``auroc_ci95_note`` say why ("not estimable
(n = ...)").
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torchmetrics.functional.classification import (
    binary_auroc,
    binary_roc,
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
    multiclass_specificity,
)

from ml.fileio import write_text_atomic

MAX_ROC_POINTS = 200
#: positives and negatives (each) a bootstrap interval of the AUROC needs
MIN_FOR_CI = 5
MACRO_RULE = (
    "unweighted mean over all classes; an undefined per-class precision/recall/specificity/F1 counts "
    "as 0 (scikit-learn's default, zero_division=0); AUROC: mean over the classes where it is defined"
)


def _f(x: Any) -> float | None:
    v = float(x)
    return v if math.isfinite(v) else None


def _auroc(scores: torch.Tensor, positive: torch.Tensor) -> float | None:
    if positive.numel() == 0 or positive.all() or not positive.any():
        return None  # undefined with one class only
    return _f(binary_auroc(scores, positive.long()))


def _roc_points(scores: torch.Tensor, positive: torch.Tensor) -> dict[str, list[float]] | None:
    if positive.numel() == 0 or positive.all() or not positive.any():
        return None
    fpr, tpr, thr = binary_roc(scores, positive.long())
    if len(fpr) > MAX_ROC_POINTS:
        keep = torch.linspace(0, len(fpr) - 1, MAX_ROC_POINTS).round().long()
        fpr, tpr, thr = fpr[keep], tpr[keep], thr[keep]
    return {
        "fpr": [round(float(x), 5) for x in fpr],
        "tpr": [round(float(x), 5) for x in tpr],
        "thresholds": [round(min(float(x), 1.0), 5) for x in thr],
    }


def _bootstrap_auroc(
    scores: torch.Tensor,
    positive: torch.Tensor,
    groups: list[np.ndarray],
    n_boot: int,
    rng: np.random.Generator,
) -> list[float] | None:
    """95% percentile interval of the AUROC over ``n_boot`` resamplings of patients."""
    pos = int(positive.sum())
    if n_boot <= 0 or min(pos, int(positive.numel()) - pos) < MIN_FOR_CI or len(groups) < 2:
        return None
    if _auroc(scores, positive) is None:
        return None
    values = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(groups), len(groups))
        idx = torch.from_numpy(np.concatenate([groups[i] for i in pick]))
        v = _auroc(scores[idx], positive[idx])
        if v is not None:
            values.append(v)
    if len(values) < max(10, n_boot // 10):
        return None
    lo, hi = np.percentile(values, [2.5, 97.5])
    return [round(float(lo), 5), round(float(hi), 5)]


def _patient_groups(n: int, patients: Sequence[str] | None) -> list[np.ndarray]:
    if not patients:
        return [np.array([i]) for i in range(n)]
    by: dict[str, list[int]] = {}
    for i, p in enumerate(patients):
        by.setdefault(p, []).append(i)
    return [np.array(v) for v in by.values()]


def _binary_stats(pred: torch.Tensor, positive: torch.Tensor) -> dict[str, float | None | int]:
    tp = int((pred & positive).sum())
    fp = int((pred & ~positive).sum())
    fn = int((~pred & positive).sum())
    tn = int((~pred & ~positive).sum())

    def ratio(a: int, b: int) -> float | None:
        return a / b if b else None

    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    f1 = ratio(2 * tp, 2 * tp + fp + fn)
    return {
        "precision": precision,
        "recall": recall,
        "specificity": ratio(tn, tn + fp),
        "f1": f1,
        "support": tp + fn,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def operating_point_ci(
    scores: torch.Tensor | np.ndarray,
    positive: torch.Tensor | np.ndarray,
    threshold: float,
    patients: Sequence[str] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Accuracy, sensitivity, specificity and AUROC of the call ``score >= threshold`` with 95% intervals
    over ``n_boot`` patient resamplings; ``None`` when not estimable (< :data:`MIN_FOR_CI` per class)."""
    s = torch.as_tensor(np.asarray(scores, dtype=np.float64))
    pos = torch.as_tensor(np.asarray(positive, dtype=bool))
    groups = _patient_groups(len(s), patients)

    def figures(idx: torch.Tensor | slice) -> dict[str, float | None]:
        st = _binary_stats(s[idx] >= threshold, pos[idx])
        n = st["tp"] + st["fp"] + st["fn"] + st["tn"]  # type: ignore[operator]
        return {"accuracy": (st["tp"] + st["tn"]) / n if n else None,  # type: ignore[operator]
                "sensitivity": st["recall"], "specificity": st["specificity"], "auroc": _auroc(s[idx], pos[idx])}  # fmt: skip

    point, npos = figures(slice(None)), int(pos.sum())
    estimable = min(npos, len(pos) - npos) >= MIN_FOR_CI and len(groups) >= 2 and n_boot > 0
    draws: dict[str, list[float]] = {k: [] for k in point}
    rng = np.random.default_rng(seed)
    for _ in range(n_boot if estimable else 0):
        idx = torch.from_numpy(np.concatenate([groups[i] for i in rng.integers(0, len(groups), len(groups))]))
        for k, v in figures(idx).items():
            if v is not None:
                draws[k].append(v)
    ci = {k: ([round(float(x), 4) for x in np.percentile(v, [2.5, 97.5])] if len(v) >= max(10, n_boot // 10)
              else None) for k, v in draws.items()}  # fmt: skip
    return {"threshold": float(threshold), "n_images": len(s), "n_patients": len(groups),
            "metrics": {k: (round(v, 4) if v is not None else None) for k, v in point.items()}, "ci95": ci,
            "ci_method": f"percentile bootstrap over patients, {n_boot} resamples"}  # fmt: skip


def _macro(per_class: dict[str, dict[str, Any]], key: str) -> float | None:
    """Macro average under :data:`MACRO_RULE`."""
    scored = [v for v in per_class.values() if "tp" in v or "precision" in v]  # has known targets
    if key == "auroc":
        vals = [v[key] for v in scored if v.get(key) is not None]
        return float(np.mean(vals)) if vals else None
    if not scored:
        return None
    return float(np.mean([v.get(key) or 0.0 for v in scored]))


def _counts_note(positives: int, negatives: int) -> str:
    return f"not estimable (n = {positives} positive, {negatives} negative)"


def _auroc_notes(positive: torch.Tensor, groups: int, auroc: float | None, ci: list[float] | None) -> dict:
    pos = int(positive.sum())
    neg = int(positive.numel()) - pos
    notes: dict[str, str] = {}
    if auroc is None:
        notes["auroc_note"] = _counts_note(pos, neg)
    if ci is None:
        notes["auroc_ci95_note"] = (
            _counts_note(pos, neg) if min(pos, neg) < MIN_FOR_CI else f"not estimable ({groups} patient(s))"
        )
    return notes


def compute_metrics(
    probs: torch.Tensor,
    targets: torch.Tensor,
    labels: Sequence[str],
    task: str,
    *,
    patients: Sequence[str] | None = None,
    thresholds: dict[str, float] | None = None,
    loss: float | None = None,
    n_boot: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """All metrics for predicted probabilities ``probs`` [N, C] against ``targets``.

    ``targets``: class indices [N] (multi-class) or 1/0/-1 per label [N, C] (multi-label).
    """
    probs = probs.detach().float().cpu()
    targets = targets.detach().cpu()
    n, c = probs.shape
    labels = list(labels)
    groups = _patient_groups(n, patients)
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {
        "task": task,
        "labels": labels,
        "n_images": n,
        "n_patients": len(groups),
        "loss": _f(loss) if loss is not None else None,
    }
    per_class: dict[str, dict[str, Any]] = {}
    roc: dict[str, Any] = {}
    if n == 0:
        out.update(accuracy=None, per_class={}, macro={}, confusion_matrix=[], roc={})
        return out
    if task == "multiclass":
        t = targets.long()
        out["accuracy"] = _f(multiclass_accuracy(probs, t, num_classes=c, average="micro"))
        out["balanced_accuracy"] = _f(multiclass_recall(probs, t, num_classes=c, average="macro"))
        prec = multiclass_precision(probs, t, num_classes=c, average=None, zero_division=0)
        rec = multiclass_recall(probs, t, num_classes=c, average=None, zero_division=0)
        spec = multiclass_specificity(probs, t, num_classes=c, average=None)
        f1 = multiclass_f1_score(probs, t, num_classes=c, average=None, zero_division=0)
        cm = multiclass_confusion_matrix(probs, t, num_classes=c)
        out["confusion_matrix"] = cm.tolist()
        for j, label in enumerate(labels):
            positive = t == j
            negatives = int((t != j).sum())
            predicted = int(cm[:, j].sum())  # undefined ratios are None, not 0
            auroc = _auroc(probs[:, j], positive)
            ci = _bootstrap_auroc(probs[:, j], positive, groups, n_boot, rng)
            per_class[label] = {
                "precision": _f(prec[j]) if predicted else None,
                "recall": _f(rec[j]) if positive.any() else None,
                "specificity": _f(spec[j]) if negatives else None,
                "f1": _f(f1[j]) if positive.any() or predicted else None,
                "support": int(positive.sum()),
                "auroc": auroc,
                "auroc_ci95": ci,
                **_auroc_notes(positive, len(groups), auroc, ci),
            }
            roc[label] = _roc_points(probs[:, j], positive)
    else:
        thresholds = thresholds or {}
        correct = total = 0
        cms = {}
        exact = torch.ones(n, dtype=torch.bool)
        for j, label in enumerate(labels):
            known = targets[:, j] >= 0
            if not known.any():
                per_class[label] = {"support": 0, "threshold": thresholds.get(label, 0.5)}
                continue
            scores, positive = probs[known, j], targets[known, j] > 0.5
            thr = float(thresholds.get(label, 0.5))
            pred = scores >= thr
            stats: dict[str, Any] = _binary_stats(pred, positive)
            correct += int((pred == positive).sum())
            total += int(known.sum())
            exact[known] = exact[known] & (pred == positive)
            sub_groups = _patient_groups(
                int(known.sum()), [p for p, k in zip(patients, known, strict=True) if k] if patients else None
            )
            auroc = _auroc(scores, positive)
            ci = _bootstrap_auroc(scores, positive, sub_groups, n_boot, rng)
            stats.update(threshold=thr, auroc=auroc, auroc_ci95=ci)
            stats.update(_auroc_notes(positive, len(sub_groups), auroc, ci))
            cms[label] = [[stats.pop("tn"), stats.pop("fp")], [stats.pop("fn"), stats.pop("tp")]]
            per_class[label] = stats
            roc[label] = _roc_points(scores, positive)
        out["accuracy"] = correct / total if total else None
        out["subset_accuracy"] = float(exact.float().mean())
        out["confusion_matrix"] = cms  # per label [[tn, fp], [fn, tp]]
    out["per_class"] = per_class
    out["macro"] = {k: _macro(per_class, k) for k in ("precision", "recall", "specificity", "f1", "auroc")}
    out["macro"]["auroc_n"] = sum(1 for v in per_class.values() if v.get("auroc") is not None)
    out["macro_rule"] = MACRO_RULE
    out["roc"] = roc
    return out


def choose_thresholds(probs: torch.Tensor, targets: torch.Tensor, labels: Sequence[str]) -> dict[str, float]:
    """Per-label F1-optimal thresholds on the validation split (0.5 where a label has no positives)."""
    grid = np.linspace(0.01, 0.99, 99)
    out: dict[str, float] = {}
    p = probs.detach().float().cpu().numpy()
    t = targets.detach().cpu().numpy()
    for j, label in enumerate(labels):
        known = t[:, j] >= 0
        pos = t[known, j] > 0.5
        if not pos.any() or pos.all():
            out[label] = 0.5
            continue
        s = p[known, j]
        pred = s[None, :] >= grid[:, None]
        tp = (pred & pos).sum(1)
        f1 = 2 * tp / (pred.sum(1) + pos.sum())
        out[label] = round(float(grid[int(np.argmax(f1))]), 2)
    return out


def summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers (for events and the manifest)."""
    return {
        "loss": metrics.get("loss"),
        "accuracy": metrics.get("accuracy"),
        "macro_auroc": metrics.get("macro", {}).get("auroc"),
        "macro_f1": metrics.get("macro", {}).get("f1"),
        "n_images": metrics.get("n_images"),
        "n_patients": metrics.get("n_patients"),
    }


def format_table(metrics: dict[str, Any]) -> str:
    """A plain-text table for the terminal."""

    def fmt(v: Any) -> str:
        return "   -  " if v is None else f"{v:6.3f}"

    lines = [f"{metrics['n_images']} images, {metrics['n_patients']} patients"]
    if metrics.get("loss") is not None:
        lines.append(f"loss      {metrics['loss']:.4f}")
    if metrics.get("accuracy") is not None:
        lines.append(f"accuracy  {metrics['accuracy']:.4f}")
    width = max([len(x) for x in metrics["labels"]] + [5])
    lines.append(f"{'label':<{width}}  precis  recall  specif      f1   auroc  95% CI           n")
    rows = list(metrics["per_class"].items()) + [("macro", metrics.get("macro", {}))]
    for label, m in rows:
        ci = m.get("auroc_ci95")
        ci_s = f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else " " * 14
        note = m.get("auroc_note") or m.get("auroc_ci95_note")
        lines.append(
            f"{label:<{width}}  {fmt(m.get('precision'))}  {fmt(m.get('recall'))}  "
            f"{fmt(m.get('specificity'))}  {fmt(m.get('f1'))}  {fmt(m.get('auroc'))}  {ci_s}  "
            f"{m.get('support', '')}" + (f"  AUROC {note}" if note else "")
        )
    if metrics.get("macro_rule"):
        lines.append(f"macro: {metrics['macro_rule']}")
    lines += calibration_lines(metrics.get("calibration"), metrics.get("operating_point"))
    return "\n".join(lines)


def calibration_lines(
    calibration: dict[str, Any] | None, operating_point: dict[str, Any] | None
) -> list[str]:
    """The ECE (which split, before/after the temperature) and the operating point, one line each."""

    def ece(v: Any) -> str:
        return "-" if v is None else f"{v:.3f}"

    lines = []
    c = calibration or {}
    if c.get("temperature") is not None and c.get("split") == "validation":
        lines.append(f"calibration: temperature {c['temperature']:.3f} fitted on validation, "
                     f"ECE {ece(c.get('ece_before'))} -> {ece(c.get('ece_after'))} (validation)")  # fmt: skip
    elif c.get("note"):
        lines.append(f"calibration: {c['note']}")
    part = c.get("test")
    if isinstance(part, dict):
        lines.append(f"ECE on {part['split']}: {ece(part.get('ece_before'))} before, "
                     f"{ece(part.get('ece_after'))} with the validation temperature (n = {part.get('n')})")  # fmt: skip
    if c.get("split") not in ("validation", None) and "ece" in c:
        t = c.get("temperature")
        lines.append(f"ECE on {c['split']}: {ece(c.get('ece'))}"
                     + (f" (model temperature {t:.3f})" if t is not None else " (model not temperature-scaled)"))  # fmt: skip
    op = operating_point or {}
    if op.get("text"):
        line = str(op["text"])
        for split in ("test", "data"):
            r = op.get(split)
            if isinstance(r, dict) and r.get("sensitivity") is not None:
                line += f"; on {split}: sensitivity {r['sensitivity']:.3f}, specificity {ece(r.get('specificity'))}"
        lines.append(line)
    return lines


def write_metrics(path: str | os.PathLike[str], metrics: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(metrics, indent=2, allow_nan=False, default=str) + "\n")
