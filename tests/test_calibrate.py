"""Calibration (ml.training.calibration) against scikit-learn, and `cxr calibrate` end to end."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import log_loss, roc_curve

from ml.training import calibration as cal


def _overconfident(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    true_logit = rng.normal(0, 1.5, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-true_logit))).astype(int)
    return true_logit * 3.0, y  # a model three times too sure of itself


def test_reliability_bins_match_sklearn_calibration_curve() -> None:
    rng = np.random.default_rng(1)
    prob = np.concatenate([rng.random(500), [0.0, 1.0, 0.1, 0.2]])  # edges and exact bin boundaries
    y = (rng.random(len(prob)) < prob).astype(float)
    bins = cal.reliability_bins(prob, y, 10)
    frac, mean = calibration_curve(y, prob, n_bins=10, strategy="uniform")
    np.testing.assert_allclose(bins["fraction_positive"], frac, atol=1e-12)
    np.testing.assert_allclose(bins["mean_predicted"], mean, atol=1e-12)
    assert sum(bins["count"]) == len(prob)


def test_temperature_fixes_overconfidence_and_lowers_ece() -> None:
    logits, y = _overconfident()
    targets = y[:, None].astype(float)
    t = cal.fit_temperature(logits[:, None], targets, "multilabel")
    assert t == pytest.approx(3.0, rel=0.15)
    before = cal.apply_temperature(logits, 1.0, "multilabel")
    after = cal.apply_temperature(logits, t, "multilabel")
    assert log_loss(y, after) < log_loss(y, before)
    assert cal.nll(logits[:, None], targets, "multilabel", t) == pytest.approx(log_loss(y, after), rel=1e-6)
    assert cal.expected_calibration_error(after, y) < 0.5 * cal.expected_calibration_error(before, y)


def test_multiclass_temperature_from_probabilities() -> None:
    logits, y = _overconfident(seed=2)
    two = np.stack([np.zeros_like(logits), logits], 1)
    probs = cal.apply_temperature(two, 1.0, "multiclass")
    t = cal.fit_temperature(cal.logits_from_probs(probs, "multiclass"), y, "multiclass")
    assert t == pytest.approx(3.0, rel=0.15)
    summary = cal.calibration_summary(cal.apply_temperature(two, t, "multiclass"), y, "multiclass")
    assert summary["ece"] < 0.05 and summary["n"] == len(y)


def test_operating_points_youden_and_target_sensitivity() -> None:
    rng = np.random.default_rng(3)
    y = rng.random(400) < 0.4
    s = np.where(y, rng.normal(1, 1, 400), rng.normal(0, 1, 400))
    fpr, tpr, thr = roc_curve(y, s)
    youden = cal.operating_point(s, y)
    assert youden == pytest.approx(thr[int(np.argmax(tpr - fpr))])
    at90 = cal.operating_point(s, y, target_sensitivity=0.9)
    stats = cal.sensitivity_specificity(s, y, at90)
    assert stats["sensitivity"] >= 0.9 and at90 == pytest.approx(thr[int(np.flatnonzero(tpr >= 0.9)[0])])
    assert cal.operating_point(s, np.ones(400, bool)) is None  # no negatives: no operating point
