"""Post-hoc calibration at the end of training (ml.training.posthoc): fitted on validation only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_curve

from ml.training import calibration as cal
from ml.training.posthoc import add_test_figures, fit_posthoc, not_fitted


def overconfident(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two-class probabilities whose true logit is x but which report 3x: overconfident (T ~ 3)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(0, 1.5, n) + (2 * y - 1) * 0.8
    true_p1 = 1 / (1 + np.exp(-x))
    y = (rng.random(n) < true_p1).astype(int)  # outcomes drawn from the true probability
    p1 = 1 / (1 + np.exp(-3 * x))
    return torch.tensor(np.stack([1 - p1, p1], 1), dtype=torch.float32), torch.tensor(y)


def test_two_class_temperature_and_youden_on_validation() -> None:
    vp, vt = overconfident(2000, 0)
    post = fit_posthoc(vp, vt, ["normal", "pneumonia"], "multiclass")
    assert post.temperature == pytest.approx(3.0, rel=0.15)
    c = post.calibration
    assert c["split"] == "validation" and c["ece_after"] < c["ece_before"]
    # Youden on the temperature-scaled validation scores = scikit-learn's argmax(tpr - fpr)
    s = post.apply(vp, "multiclass").numpy()[:, 1]
    fpr, tpr, thr = roc_curve(vt.numpy(), s)
    assert post.thresholds == {"pneumonia": pytest.approx(float(thr[np.argmax(tpr - fpr)]), abs=1e-5)}
    op = post.operating_point
    assert op["split"] == "validation" and op["text"].startswith("operating point: Youden's J on validation")
    # the test split: scaled with the validation temperature, ECE before/after, sens/spec at the point
    tp, tt = overconfident(500, 1)
    scaled = post.apply(tp, "multiclass")
    add_test_figures(post, tp, scaled, tt, ["normal", "pneumonia"], "multiclass")
    assert post.calibration["test"]["ece_after"] < post.calibration["test"]["ece_before"]
    expected = cal.sensitivity_specificity(scaled.numpy()[:, 1], tt.numpy() == 1, op["threshold"])
    assert op["test"] == expected


def test_target_sensitivity_is_reached_on_validation() -> None:
    vp, vt = overconfident(600, 2)
    post = fit_posthoc(vp, vt, ["normal", "pneumonia"], "multiclass", target_sensitivity=0.9)
    assert post.operating_point["rule"] == "target sensitivity 0.9"
    assert post.operating_point["validation"]["sensitivity"] >= 0.9


def test_multilabel_thresholds_are_chosen_on_scaled_validation() -> None:
    rng = np.random.default_rng(3)
    t = torch.tensor(rng.integers(0, 2, (300, 2)), dtype=torch.float32)
    t[:10, 1] = -1  # unknown labels are left out
    p = torch.sigmoid(
        4 * (t.clamp(min=0) - 0.5) + torch.tensor(rng.normal(0, 2, (300, 2)), dtype=torch.float32)
    )
    post = fit_posthoc(p, t, ["a", "b"], "multilabel")
    assert post.temperature is not None and set(post.thresholds or {}) == {"a", "b"}
    assert "F1-optimal per label on validation" in post.operating_point["text"]


@pytest.mark.parametrize(
    ("probs", "targets", "reason"),
    [
        (torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), "the validation split is empty"),
        (torch.tensor([[0.3, 0.7], [0.6, 0.4]]), torch.tensor([1, 1]), "one class only"),
    ],
)
def test_nothing_is_fitted_without_both_classes(probs, targets, reason: str) -> None:
    post = fit_posthoc(probs, targets, ["a", "b"], "multiclass")
    assert post.temperature is None and post.thresholds is None
    assert reason in post.calibration["note"] and reason in post.operating_point["text"]
    assert torch.equal(post.apply(probs, "multiclass"), probs)  # nothing applied
    assert not_fitted("x", "multiclass", ["a", "b", "c"]).operating_point == {}  # 3 classes: no point


def test_cli_target_sensitivity_reaches_the_config_and_the_table() -> None:
    import argparse

    from ml.cli_train import _register, config_from_args
    from ml.training.metrics import format_table

    parser = argparse.ArgumentParser()
    _register(parser.add_subparsers())
    args = parser.parse_args(["train", "--data", "x", "--target-sensitivity", "0.9"])
    assert config_from_args(args).target_sensitivity == 0.9

    vp, vt = overconfident(400, 4)
    post = fit_posthoc(vp, vt, ["normal", "pneumonia"], "multiclass", target_sensitivity=0.9)
    add_test_figures(post, vp, post.apply(vp, "multiclass"), vt, ["normal", "pneumonia"], "multiclass")
    table = {"n_images": 400, "n_patients": 400, "labels": ["normal", "pneumonia"], "per_class": {},
             "calibration": post.calibration, "operating_point": post.operating_point}  # fmt: skip
    text = format_table(table)
    assert f"temperature {post.temperature:.3f} fitted on validation" in text
    assert "ECE on test:" in text and "with the validation temperature" in text
    assert "operating point: target sensitivity 0.9 on validation, threshold" in text and "on test: sensitivity" in text
