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


def test_calibrate_validation_reports_before_and_after() -> None:
    logits, y = _overconfident(seed=4)
    probs = cal.apply_temperature(logits, 1.0, "multilabel")[:, None]
    out = cal.calibrate_validation(probs, y[:, None].astype(float), "multilabel")
    assert out["temperature"] == pytest.approx(3.0, rel=0.15)
    assert out["ece_after"] < out["ece_before"] and out["nll_after"] < out["nll_before"]
    assert sum(out["reliability_after"]["count"]) == len(y)


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


def test_cxr_calibrate_end_to_end_on_kermany_val(tmp_path, shared_data, capsys) -> None:  # noqa: ANN001
    import json

    import torch

    from ml.cli import main as cxr
    from ml.fileio import sha256_file
    from ml.models import bundle, library
    from ml.models.manifest import ModelManifest
    from ml.models.registry import build_model

    torch.manual_seed(0)
    manifest = ModelManifest(name="tiny-pneumonia", architecture="cxr_resnet_small",
                             labels=["NORMAL", "PNEUMONIA"], input_size=64)
    source = bundle.save_model(tmp_path / "tiny.safetensors", build_model("cxr_resnet_small", 2, 1), manifest)
    assert cxr(["models", "import", str(source)]) == 0
    installed = library.find_model("tiny-pneumonia").path
    digest = sha256_file(installed)
    report = tmp_path / "report.png"
    capsys.readouterr()
    code = cxr(["calibrate", "--model", "tiny-pneumonia", "--data", str(shared_data / "cxr" / "kermany-val"),
                "--target-sensitivity", "0.9", "--report", str(report), "--bootstrap", "20", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert sha256_file(installed) == digest  # the original model file is never changed
    new = library.find_model("tiny-pneumonia-site")
    assert new is not None and new.path != installed and out["model"] == "tiny-pneumonia-site"
    prov = new.manifest.provenance.extra["site_calibration"]
    assert prov["source_model"]["sha256"] == digest and prov["date"]
    site = prov["site_data"]
    assert site["n_images"] == 16 and site["per_class"] == {"NORMAL": 8, "PNEUMONIA": 8}
    halves = site["calibration_half"]["images"] + site["check_half"]["images"]
    assert halves == 16 and min(site["calibration_half"]["images"], site["check_half"]["images"]) >= 4
    assert new.manifest.temperature == pytest.approx(prov["temperature"]["after"]) and new.manifest.temperature > 0
    assert prov["operating_points"]["rule"] == "sensitivity >= 0.9"
    assert set(prov["check_before"]) >= {"ece", "reliability", "per_label", "macro_auroc"}
    assert report.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the new version loads and its probabilities are the source's with the fitted temperature
    from ml.imaging.read import read_image
    from ml.inference.predictor import load_predictor

    image = read_image(next((shared_data / "cxr" / "kermany-val" / "NORMAL").iterdir()))
    p_old = load_predictor(installed, device="cpu").predict_one(image).probabilities
    p_new = load_predictor(new.path, device="cpu").predict_one(image).probabilities
    t = new.manifest.temperature
    logit_old = np.log(p_old[1] / p_old[0])
    assert np.log(p_new[1] / p_new[0]) == pytest.approx(logit_old / t, rel=1e-3, abs=1e-4)


def test_site_calibration_fits_scope_statistics_when_the_model_has_none(tmp_path, shared_data) -> None:  # noqa: ANN001
    import torch

    from ml.models import bundle
    from ml.models.manifest import ModelManifest
    from ml.models.registry import build_model
    from ml.training.site_calibration import calibrate_on_site

    torch.manual_seed(1)
    manifest = ModelManifest(name="tiny", architecture="cxr_resnet_small", labels=["NORMAL", "PNEUMONIA"],
                             input_size=64)  # fmt: skip
    source = bundle.save_model(tmp_path / "tiny.safetensors", build_model("cxr_resnet_small", 2, 1), manifest)
    data = shared_data / "cxr" / "kermany-val"
    few = calibrate_on_site(source, data, n_boot=10)  # 16 images: too few to fit statistics, and it says so
    assert few.manifest.scope is None and "too few images" in few.summary["scope_statistics"]["why"]
    result = calibrate_on_site(source, data, n_boot=10, min_scope_images=6)
    stats = result.manifest.scope
    assert stats is not None and stats["threshold"] > 0
    alarms = result.summary["scope_statistics"]["check_false_alarms"]
    assert alarms["n"] == result.summary["site_data"]["check_half"]["images"] and 0 <= alarms["flagged"] <= alarms["n"]
