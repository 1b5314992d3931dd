"""Calibration: temperature scaling, reliability-diagram bins, expected calibration error, operating points.

Numpy only (no torch), so the same code serves training (fit on the validation split) and
``cxr calibrate`` (fit on a site's calibration half).

* :func:`fit_temperature`: the one temperature ``T`` minimising the negative log-likelihood of
  ``logits / T`` (multi-class: softmax cross-entropy; multi-label: binary cross-entropy over the
  known labels, ``-1`` = unknown).
* :func:`reliability_bins`: equal-width bins as scikit-learn's ``calibration_curve(strategy="uniform")``
  (same edges, same handling of 1.0, empty bins left out); :func:`expected_calibration_error`:
  ``sum(n_bin / N * |fraction positive - mean predicted|)``.
* :func:`operating_point`: Youden's J, or the highest threshold that reaches a target sensitivity.

What is calibrated (:func:`binary_view`): multi-label: every (image, known label) pair pooled;
two-class multi-class: the probability of the second class; more classes: the top-label
confidence against correctness.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

EPS = 1e-7


def logits_from_probs(probs: np.ndarray, task: str) -> np.ndarray:
    """Logits that give ``probs`` back (multi-class: up to a constant per row, which softmax ignores)."""
    p = np.clip(np.asarray(probs, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p) if task == "multiclass" else np.log(p) - np.log1p(-p)


def apply_temperature(logits: np.ndarray, temperature: float, task: str) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    if task == "multiclass":
        z = z - z.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)
    return 1.0 / (1.0 + np.exp(-z))


def nll(logits: np.ndarray, targets: np.ndarray, task: str, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``targets`` (class index [N] or 1/0/-1 [N, C])."""
    p = np.clip(apply_temperature(logits, temperature, task), EPS, 1 - EPS)
    t = np.asarray(targets)
    if task == "multiclass":
        return float(-np.log(p[np.arange(len(t)), t.astype(int)]).mean())
    known = t >= 0
    if not known.any():
        return float("nan")
    y = t[known] > 0.5
    q = p[known]
    return float(-(np.where(y, np.log(q), np.log1p(-q))).mean())


def fit_temperature(logits: np.ndarray, targets: np.ndarray, task: str) -> float:
    """The NLL-minimising temperature (golden-section search on log T in [1/20, 20])."""
    lo, hi = math.log(0.05), math.log(20.0)
    g = (math.sqrt(5) - 1) / 2

    def f(u: float) -> float:
        return nll(logits, targets, task, math.exp(u))

    a, b = lo + (1 - g) * (hi - lo), lo + g * (hi - lo)
    fa, fb = f(a), f(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = lo + (1 - g) * (hi - lo)
            fa = f(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = f(b)
    return float(math.exp((lo + hi) / 2))


def binary_view(probs: np.ndarray, targets: np.ndarray, task: str) -> tuple[np.ndarray, np.ndarray]:
    """(predicted probability, outcome 0/1) pairs that calibration is measured on (module docstring)."""
    p = np.asarray(probs, dtype=np.float64)
    t = np.asarray(targets)
    if task == "multiclass":
        if p.shape[1] == 2:
            return p[:, 1], (t == 1).astype(float)
        top = p.argmax(1)
        return p.max(1), (top == t).astype(float)
    known = t >= 0
    return p[known], (t[known] > 0.5).astype(float)


def reliability_bins(prob: np.ndarray, outcome: np.ndarray, n_bins: int = 10) -> dict[str, list[float]]:
    """Equal-width reliability bins (scikit-learn's calibration_curve, uniform): non-empty bins only."""
    prob, outcome = np.asarray(prob, dtype=np.float64), np.asarray(outcome, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ids = np.searchsorted(edges[1:-1], prob)
    total = np.bincount(ids, minlength=n_bins)
    true = np.bincount(ids, weights=outcome, minlength=n_bins)
    pred = np.bincount(ids, weights=prob, minlength=n_bins)
    keep = total > 0
    return {
        "edges": [float(e) for e in edges],
        "bin": [int(i) for i in np.flatnonzero(keep)],
        "mean_predicted": [float(v) for v in pred[keep] / total[keep]],
        "fraction_positive": [float(v) for v in true[keep] / total[keep]],
        "count": [int(v) for v in total[keep]],
    }


def expected_calibration_error(prob: np.ndarray, outcome: np.ndarray, n_bins: int = 10) -> float | None:
    bins = reliability_bins(prob, outcome, n_bins)
    n = sum(bins["count"])
    if not n:
        return None
    return float(sum(c / n * abs(t - p) for c, t, p in
                     zip(bins["count"], bins["fraction_positive"], bins["mean_predicted"], strict=True)))  # fmt: skip


def calibration_summary(probs: np.ndarray, targets: np.ndarray, task: str, n_bins: int = 10) -> dict[str, Any]:
    """ECE and reliability bins of ``probs`` (for metrics.json, the evaluation page, reports)."""
    prob, outcome = binary_view(probs, targets, task)
    return {"ece": expected_calibration_error(prob, outcome, n_bins), "n_bins": n_bins,
            "reliability": reliability_bins(prob, outcome, n_bins), "n": int(len(prob))}  # fmt: skip


def calibrate_validation(probs: np.ndarray, targets: np.ndarray, task: str, n_bins: int = 10) -> dict[str, Any]:
    """Temperature fitted on validation probabilities, with ECE and reliability bins before and after
    (for the manifest's ``temperature`` and metrics.json's ``calibration``)."""
    logits = logits_from_probs(probs, task)
    t = fit_temperature(logits, targets, task)
    before = calibration_summary(probs, targets, task, n_bins)
    after = calibration_summary(apply_temperature(logits, t, task), targets, task, n_bins)
    return {"method": "temperature scaling (NLL) on the validation split", "temperature": t,
            "ece_before": before["ece"], "ece_after": after["ece"], "nll_before": nll(logits, targets, task),
            "nll_after": nll(logits, targets, task, t), "reliability_before": before["reliability"],
            "reliability_after": after["reliability"]}  # fmt: skip


def operating_point(scores: np.ndarray, positive: np.ndarray, target_sensitivity: float | None = None) -> float | None:
    """A decision threshold (score >= threshold = positive): Youden's J, or the highest threshold
    whose sensitivity reaches ``target_sensitivity``. None without both positives and negatives."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive).astype(bool)
    if y.all() or not y.any():
        return None
    candidates = np.unique(s)[::-1]  # high -> low
    sens = np.array([(s[y] >= c).mean() for c in candidates])
    spec = np.array([(s[~y] < c).mean() for c in candidates])
    if target_sensitivity is not None:
        i = int(np.flatnonzero(sens >= target_sensitivity - 1e-12)[0])
    else:
        i = int(np.argmax(sens + spec - 1.0))
    return float(candidates[i])


def sensitivity_specificity(scores: np.ndarray, positive: np.ndarray, threshold: float) -> dict[str, float | None]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive).astype(bool)
    pred = s >= threshold
    return {"threshold": float(threshold),
            "sensitivity": float(pred[y].mean()) if y.any() else None,
            "specificity": float((~pred[~y]).mean()) if (~y).any() else None}  # fmt: skip


__all__ = [
    "apply_temperature",
    "binary_view",
    "calibrate_validation",
    "calibration_summary",
    "expected_calibration_error",
    "fit_temperature",
    "logits_from_probs",
    "nll",
    "operating_point",
    "reliability_bins",
    "sensitivity_specificity",
]
