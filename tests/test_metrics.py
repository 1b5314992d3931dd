"""Evaluation metrics agree with scikit-learn, and small samples say "not estimable" instead of a number."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ml.training.metrics import MACRO_RULE, MIN_FOR_CI, compute_metrics, format_table

sk = pytest.importorskip("sklearn.metrics")


def test_macro_averages_follow_scikit_learn_when_a_class_is_never_predicted() -> None:
    # the case: class "c" is never predicted, so its precision is undefined
    targets = torch.tensor([0, 1, 2, 2, 1, 0])
    predicted = [0, 1, 1, 1, 1, 0]
    probs = torch.nn.functional.one_hot(torch.tensor(predicted), 3).float() * 0.8 + 0.1
    m = compute_metrics(probs, targets, ["a", "b", "c"], "multiclass", n_boot=0)
    assert m["per_class"]["c"]["precision"] is None  # shown as "-" per class
    p, r, f, _ = sk.precision_recall_fscore_support(
        targets.numpy(), predicted, labels=[0, 1, 2], average="macro", zero_division=0
    )
    assert m["macro"]["precision"] == pytest.approx(p) == pytest.approx((1.0 + 0.5 + 0.0) / 3)  # not 0.75
    assert m["macro"]["recall"] == pytest.approx(r) and m["macro"]["f1"] == pytest.approx(f)
    assert m["macro_rule"] == MACRO_RULE and "zero_division=0" in MACRO_RULE


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multiclass_metrics_match_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, c = 60, 4
    targets = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c)) + 1.5 * np.eye(c)[targets]
    logits[:, 3] -= 5  # class 3 is (almost) never predicted
    probs = torch.softmax(torch.tensor(logits), 1).float()
    m = compute_metrics(probs, torch.tensor(targets), list("abcd"), "multiclass", n_boot=0)
    pred = probs.argmax(1).numpy()
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(targets, pred))
    assert m["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(targets, pred))
    for avg_key, sk_fn in (
        ("precision", sk.precision_score),
        ("recall", sk.recall_score),
        ("f1", sk.f1_score),
    ):
        ref = sk_fn(targets, pred, labels=list(range(c)), average="macro", zero_division=0)
        assert m["macro"][avg_key] == pytest.approx(ref, abs=1e-6), avg_key
    ref_auc = [sk.roc_auc_score(targets == j, probs[:, j].numpy()) for j in range(c)]
    assert [m["per_class"][x]["auroc"] for x in "abcd"] == pytest.approx(ref_auc, abs=1e-5)
    assert m["macro"]["auroc"] == pytest.approx(
        sk.roc_auc_score(targets, probs.numpy().astype(np.float64) / probs.numpy().sum(1, keepdims=True),
                         multi_class="ovr", average="macro"),
        abs=1e-5,
    )  # fmt: skip
    assert m["confusion_matrix"] == sk.confusion_matrix(targets, pred, labels=list(range(c))).tolist()


def test_multilabel_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    n, c = 80, 3
    truth = rng.random((n, c)) < [0.3, 0.5, 0.2]
    probs = np.clip(truth * 0.3 + rng.random((n, c)) * 0.7, 0, 1)
    probs[:, 2] *= 0.4  # label "z" is never above its threshold: precision undefined
    thresholds = {"x": 0.5, "y": 0.4, "z": 0.6}
    m = compute_metrics(
        torch.tensor(probs).float(), torch.tensor(truth.astype(np.int64)), ["x", "y", "z"], "multilabel",
        thresholds=thresholds, n_boot=0,
    )  # fmt: skip
    pred = probs.astype(np.float32) >= np.array([0.5, 0.4, 0.6], dtype=np.float32)
    assert m["per_class"]["z"]["precision"] is None
    p, r, f, _ = sk.precision_recall_fscore_support(truth, pred, average="macro", zero_division=0)
    assert (m["macro"]["precision"], m["macro"]["recall"], m["macro"]["f1"]) == pytest.approx((p, r, f))
    assert m["macro"]["auroc"] == pytest.approx(sk.roc_auc_score(truth, probs, average="macro"), abs=1e-5)


def test_too_few_positives_is_not_estimable_instead_of_a_zero_width_interval() -> None:
    # the 2-image test split: "AUROC 1.000, 95% CI 1.000 - 1.000"
    m = compute_metrics(
        torch.tensor([[0.9, 0.1], [0.2, 0.8]]), torch.tensor([0, 1]), ["a", "b"], "multiclass"
    )
    a = m["per_class"]["a"]
    assert a["auroc"] == 1.0 and a["auroc_ci95"] is None
    assert a["auroc_ci95_note"] == "not estimable (n = 1 positive, 1 negative)"
    # one class only: no AUROC at all, and it says why (not 0.000)
    one = compute_metrics(
        torch.tensor([[0.9, 0.1], [0.6, 0.4]]), torch.tensor([0, 0]), ["a", "b"], "multiclass"
    )
    assert one["per_class"]["a"]["auroc"] is None and one["macro"]["auroc"] is None
    assert one["per_class"]["a"]["auroc_note"] == "not estimable (n = 2 positive, 0 negative)"
    table = format_table(one)
    assert (
        "not estimable (n = 2 positive, 0 negative)" in table and "0.000" not in table.split("auroc")[1][:40]
    )
    # enough of each: a real interval
    rng = np.random.default_rng(0)
    t = torch.tensor(np.arange(40) % 2)
    p = torch.tensor(np.clip(t.numpy() * 0.3 + rng.random(40) * 0.7, 0, 1)).float()
    big = compute_metrics(torch.stack([1 - p, p], 1), t, ["a", "b"], "multiclass", n_boot=100)
    lo, hi = big["per_class"]["b"]["auroc_ci95"]
    assert lo < big["per_class"]["b"]["auroc"] < hi and "auroc_ci95_note" not in big["per_class"]["b"]
    # just under the minimum of each class: no interval
    few = compute_metrics(torch.stack([1 - p, p], 1)[: 2 * MIN_FOR_CI - 1], t[: 2 * MIN_FOR_CI - 1], ["a", "b"],
                          "multiclass", n_boot=100)  # fmt: skip
    assert few["per_class"]["b"]["auroc_ci95"] is None


def test_operating_point_figures_match_scikit_learn_and_their_patient_intervals_hold_them() -> None:
    from sklearn.metrics import accuracy_score, recall_score, roc_auc_score

    from ml.training.metrics import operating_point_ci

    rng = np.random.default_rng(3)
    y = rng.random(400) < 0.6
    scores = np.clip(rng.normal(np.where(y, 0.65, 0.35), 0.2), 0, 1)
    patients = [f"p{i // 2}" for i in range(400)]  # two images per patient
    out = operating_point_ci(scores, y, 0.5, patients, n_boot=300)
    pred = scores >= 0.5
    m = out["metrics"]
    assert m["accuracy"] == round(accuracy_score(y, pred), 4)
    assert m["sensitivity"] == round(recall_score(y, pred), 4)
    assert m["specificity"] == round(recall_score(~y, ~pred), 4)
    assert m["auroc"] == round(roc_auc_score(y, scores), 4)
    assert out["n_patients"] == 200
    for k, (lo, hi) in out["ci95"].items():
        assert lo <= m[k] <= hi and hi - lo < 0.2, k
    few = operating_point_ci(scores[:6], y[:6], 0.5, patients[:6])
    assert all(v is None for v in few["ci95"].values())  # not estimable, not dressed up
