"""Post-hoc calibration at the end of a training run, fitted on the VALIDATION split only.

The trained weights are not touched. :func:`fit_posthoc` fits a temperature
(:func:`ml.training.calibration.calibrate_validation`) and the operating points on the validation
predictions; :meth:`PostHoc.apply` scales any later probabilities (validation, test) with that
temperature, as the predictor does with the manifest's ``temperature``.

Operating points (chosen on temperature-scaled validation probabilities, which is what the predictor
compares them with): two-class models: Youden's J on P(second class), or the highest threshold that
reaches ``target_sensitivity``; multi-label: F1-optimal per label (as before), or per-label target
sensitivity. Without validation images, or with one class only there, nothing is fitted and
metrics.json says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ml.training import calibration as cal
from ml.training.metrics import choose_thresholds


@dataclass
class PostHoc:
    temperature: float | None = None
    thresholds: dict[str, float] | None = None
    calibration: dict[str, Any] = field(default_factory=dict)  # metrics.json "calibration"
    operating_point: dict[str, Any] = field(default_factory=dict)  # metrics.json "operating_point"

    def apply(self, probs: torch.Tensor, task: str) -> torch.Tensor:
        """``probs`` with the fitted temperature applied (unchanged when none was fitted)."""
        if self.temperature is None or not len(probs):
            return probs
        p = probs.detach().float().cpu().numpy()
        scaled = cal.apply_temperature(cal.logits_from_probs(p, task), self.temperature, task)
        return torch.from_numpy(scaled.astype(np.float32))


def _both_classes(targets: np.ndarray, task: str) -> bool:
    if task == "multiclass":
        return len(np.unique(targets)) >= 2
    for j in range(targets.shape[1]):
        known = targets[:, j] >= 0
        y = targets[known, j] > 0.5
        if y.any() and not y.all():
            return True
    return False


def not_fitted(reason: str, task: str, labels: list[str]) -> PostHoc:
    """Nothing fitted, and metrics.json says why."""
    note = f"not fitted: {reason}"
    op: dict[str, Any] = {"split": "validation", "note": note, "text": f"operating point: {note}"}
    if task == "multilabel":
        op["text"] = f"operating points: {note}; 0.5 per label"
    elif len(labels) != 2:
        op = {}
    return PostHoc(calibration={"split": "validation", "temperature": None, "note": note}, operating_point=op)


def fit_posthoc(
    probs: torch.Tensor, targets: torch.Tensor, labels: list[str], task: str,
    target_sensitivity: float | None = None,
) -> PostHoc:  # fmt: skip
    """Temperature and operating points from the validation predictions ``probs`` / ``targets``."""
    if not len(probs):
        return not_fitted("the validation split is empty", task, labels)
    p = probs.detach().float().cpu().numpy().astype(np.float64)
    t = targets.detach().cpu().numpy()
    if not _both_classes(t, task):
        return not_fitted("the validation split has one class only", task, labels)
    fitted = cal.calibrate_validation(p, t, task)
    temperature = float(fitted["temperature"])
    calibration = {"split": "validation", "n": len(p), "at_bound": False, **fitted,
                   "note": "temperature, ECE and reliability bins on the validation split (n = "
                           f"{len(p)} images); metrics.json's test part uses this temperature"}  # fmt: skip
    if not 0.051 < temperature < 19.9:
        calibration["at_bound"] = True
        calibration["note"] += "; the temperature is at the search bound (1/20 or 20): too few or too " \
                               "separable validation images for a reliable fit"  # fmt: skip
    post = PostHoc(temperature=temperature, calibration=calibration)
    scaled = post.apply(probs, task).numpy().astype(np.float64)
    rule = "Youden's J" if target_sensitivity is None else f"target sensitivity {target_sensitivity:g}"
    if task == "multilabel":
        if target_sensitivity is None:
            post.thresholds = choose_thresholds(torch.from_numpy(scaled), targets, labels)
            rule = "F1-optimal per label"
        else:
            post.thresholds = {}
            for j, label in enumerate(labels):
                known = t[:, j] >= 0
                point = cal.operating_point(scaled[known, j], t[known, j] > 0.5, target_sensitivity)
                post.thresholds[label] = round(point, 6) if point is not None else 0.5
        shown = ", ".join(f"{k} {v:.3f}" for k, v in post.thresholds.items())
        post.operating_point = {"rule": rule, "split": "validation", "thresholds": post.thresholds,
                                "text": f"operating points: {rule} on validation, thresholds {shown}"}  # fmt: skip
    elif len(labels) == 2:
        positive = labels[1]
        point = cal.operating_point(scaled[:, 1], t == 1, target_sensitivity)
        if point is not None:
            post.thresholds = {positive: round(point, 6)}
            post.operating_point = {
                "rule": rule, "split": "validation", "label": positive, "threshold": post.thresholds[positive],
                "validation": cal.sensitivity_specificity(scaled[:, 1], t == 1, point),
                "text": f"operating point: {rule} on validation, threshold {point:.3f} on P({positive})",
                "note": "the analysis shows the most probable class; the operating point is the threshold "
                        f"on P({positive}) for a positive/negative call at the chosen sensitivity",
            }  # fmt: skip
    return post


def add_test_figures(post: PostHoc, raw: torch.Tensor, scaled: torch.Tensor, targets: torch.Tensor,
                 labels: list[str], task: str) -> None:  # fmt: skip
    """Add the test split's ECE (before/after the temperature) and reliability bins, and the test
    sensitivity/specificity at the two-class operating point, to ``post``'s metrics.json parts."""
    if not len(raw):
        return
    t = targets.detach().cpu().numpy()
    before = cal.calibration_summary(raw.detach().float().cpu().numpy().astype(np.float64), t, task)
    after = cal.calibration_summary(scaled.detach().float().cpu().numpy().astype(np.float64), t, task)
    post.calibration["test"] = {"split": "test", "n": after["n"], "ece_before": before["ece"],
                                "ece_after": after["ece"], "reliability_before": before["reliability"],
                                "reliability_after": after["reliability"]}  # fmt: skip
    threshold = post.operating_point.get("threshold")
    if task == "multiclass" and len(labels) == 2 and threshold is not None:
        s = scaled.detach().float().cpu().numpy()[:, 1]
        post.operating_point["test"] = cal.sensitivity_specificity(s, t == 1, threshold)


__all__ = ["PostHoc", "add_test_figures", "fit_posthoc", "not_fitted"]
