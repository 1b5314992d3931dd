"""Check and calibrate an installed model on a site's own labelled data (``cxr calibrate``).

1. Read the labelled folder/CSV (:func:`ml.training.presets.load_source`), classify every image with
   the model as it is (:class:`ml.inference.predictor.Predictor`, its own input derivation).
2. Split the images at patient level into a *calibration* half and a *check* half
   (:func:`ml.training.splits.split_dataset`, ratios 0.5/0.5), so nothing reported is fitted on itself.
3. On the calibration half: a temperature (:func:`ml.training.calibration.fit_temperature`) and one
   operating point per label (Youden, or a target sensitivity).
4. On the check half: metrics before and after, with patient-level bootstrap CIs
   (:func:`ml.training.metrics.compute_metrics`), ECE and reliability bins.
5. A new manifest: the same weights, ``temperature`` and ``thresholds`` replaced, provenance with the
   source model's hash, the site data summary, the date and the figures. The source file is only read.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ml.errors import DataSourceError
from ml.fileio import sha256_file
from ml.progress import CancelToken, ProgressCallback, check, report
from ml.training import calibration as cal

MIN_IMAGES = 8


@dataclass
class SiteCalibration:
    manifest: Any  # the new version's manifest (same weights as the source)
    source_path: Path
    source_sha256: str
    summary: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, Any] = field(default_factory=dict)  # check-half reliability before/after (report)


def _targets(samples: list[Any], labels: list[str], task: str) -> np.ndarray:
    if task == "multiclass":
        return np.array([labels.index(s.labels[0]) for s in samples], dtype=np.int64)
    out = np.zeros((len(samples), len(labels)), np.float32)
    for i, s in enumerate(samples):
        for j, label in enumerate(labels):
            out[i, j] = -1.0 if label in s.ignore else float(label in s.labels)
    return out


def _classify(predictor: Any, samples: list[Any], progress: ProgressCallback | None, cancel: CancelToken | None,
              ) -> tuple[list[int], np.ndarray, list[bool], list[tuple[str, str]], np.ndarray | None]:
    """(kept sample indices, probabilities [N, C], in-scope flags, unreadable (path, reason),
    penultimate features [N, D] or None)."""
    from ml.errors import CxrError
    from ml.imaging.read import read_image
    from ml.inference.scope import FeatureTap

    kept, rows, scope, bad, feats = [], [], [], [], []
    tap = FeatureTap(predictor.model, predictor.manifest)
    for start in range(0, len(samples), predictor.batch_size):
        check(cancel)
        items, idx = [], []
        for i in range(start, min(start + predictor.batch_size, len(samples))):
            try:
                items.append((read_image(samples[i].path), 0))
                idx.append(i)
            except CxrError as exc:
                bad.append((samples[i].path, str(exc)))
        tap.start()
        for i, p in zip(idx, predictor.predict(items) if items else [], strict=True):
            kept.append(i)
            rows.append(p.probabilities)
            scope.append(bool(p.in_scope))
        got = tap.stop()
        if got is not None:
            feats.append(got)
        report(progress, min(start + predictor.batch_size, len(samples)), len(samples), "classifying the site data")
    tap.close()
    features = np.concatenate(feats) if feats else None
    if features is not None and len(features) != len(kept):
        features = None
    return kept, np.asarray(rows, dtype=np.float64), scope, bad, features


def _fit_scope(features: np.ndarray | None, fit_i: np.ndarray, chk_i: np.ndarray, minimum: int,
               ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Out-of-scope statistics from the calibration half (fit on 2/3, 99th-percentile threshold on
    1/3), false alarms measured on the check half; (None, why) when there is too little data."""
    from ml.inference.scope import distances, fit_feature_statistics, set_threshold

    if features is None or len(fit_i) < minimum:
        return None, {"fitted": False, "why": f"too few images in the calibration half (n = {len(fit_i)}, "
                                             f"{minimum} needed)"}  # fmt: skip
    cut = max(8, (2 * len(fit_i)) // 3)
    stats = set_threshold(fit_feature_statistics(features[fit_i[:cut]]), features[fit_i[cut:]], 99.0)
    alarms = int((distances(features[chk_i], stats) > stats["threshold"]).sum())
    stats["fitted_on"] = f"site calibration half: {cut} images, threshold on {len(fit_i) - cut}"
    stats["check_false_alarms"] = {"flagged": alarms, "n": len(chk_i)}
    return stats, {"fitted": True, "threshold": stats["threshold"], "check_false_alarms": stats["check_false_alarms"]}


def _scores(probs: np.ndarray, task: str) -> np.ndarray:
    """What an operating point applies to: per label (multi-label), P(second class) (two classes)."""
    return probs if task == "multilabel" else probs[:, 1:2]


def _fit_points(probs: np.ndarray, targets: np.ndarray, labels: list[str], task: str,
                target: float | None) -> dict[str, float]:
    out: dict[str, float] = {}
    s = _scores(probs, task)
    names = labels if task == "multilabel" else labels[1:2]
    for j, label in enumerate(names):
        known = targets[:, j] >= 0 if task == "multilabel" else np.ones(len(targets), bool)
        y = targets[known, j] > 0.5 if task == "multilabel" else targets == 1
        t = cal.operating_point(s[known, j], y, target)
        if t is not None:
            out[label] = round(t, 6)
    return out


def _figures(probs: np.ndarray, targets: np.ndarray, labels: list[str], task: str, patients: list[str],
             points: dict[str, float], n_boot: int) -> dict[str, Any]:
    import torch

    from ml.training.metrics import compute_metrics

    m = compute_metrics(torch.tensor(probs, dtype=torch.float32), torch.tensor(targets), labels, task,
                        patients=patients, thresholds=points if task == "multilabel" else None, n_boot=n_boot)  # fmt: skip
    per_label: dict[str, Any] = {}
    for label, stats in m["per_class"].items():
        keys = ["auroc", "auroc_ci95", "auroc_note", "auroc_ci95_note", "support"]
        if task == "multilabel":
            keys += ["specificity", "threshold"]
        per_label[label] = {k: stats.get(k) for k in keys}
        if task == "multilabel":
            per_label[label]["sensitivity"] = stats.get("recall")
    if task == "multiclass" and len(labels) == 2 and labels[1] in points:  # the positive class's operating point
        per_label[labels[1]].update(cal.sensitivity_specificity(probs[:, 1], targets == 1, points[labels[1]]))
    c = cal.calibration_summary(probs, targets, task)
    return {"n_images": m["n_images"], "n_patients": m["n_patients"], "accuracy": m.get("accuracy"),
            "macro_auroc": m["macro"].get("auroc"), "per_label": per_label, "ece": c["ece"],
            "reliability": c["reliability"]}  # fmt: skip


def calibrate_on_site(
    model_path: str | os.PathLike[str],
    data: str | os.PathLike[str],
    *,
    target_sensitivity: float | None = None,
    preset: str = "auto",
    patient_id: str = "auto",
    seed: int = 0,
    n_boot: int = 200,
    device: str = "cpu",
    batch_size: int = 16,
    min_scope_images: int = 24,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> SiteCalibration:
    """Fit and check a site calibration of the model file ``model_path`` on ``data`` (see module)."""
    from ml.inference.predictor import Predictor
    from ml.models.bundle import load_model
    from ml.training.config import DataConfig, SplitConfig
    from ml.training.presets import load_source
    from ml.training.sources import LabelledSet
    from ml.training.splits import split_dataset

    if target_sensitivity is not None and not 0.0 < target_sensitivity < 1.0:
        raise DataSourceError("--target-sensitivity must be between 0 and 1 (e.g. 0.9).")
    source_path = Path(model_path)
    digest = sha256_file(source_path)
    net, manifest = load_model(source_path, "cpu")
    predictor = Predictor(net, manifest, device=device, batch_size=batch_size)
    labels = predictor.labels
    source = load_source(DataConfig.from_dict({"path": str(data), "preset": preset, "labels": list(labels),
                                               "frontal_only": False}), progress, cancel)  # fmt: skip
    if source.task != manifest.task:
        raise DataSourceError(f"The data is {source.task} but the model {manifest.name} is {manifest.task}.")
    kept, probs, in_scope, bad, features = _classify(predictor, source.samples, progress, cancel)
    if len(kept) < MIN_IMAGES:
        raise DataSourceError(f"Only {len(kept)} readable image(s) in {data}: at least {MIN_IMAGES} are needed.")
    samples = [source.samples[i] for i in kept]
    data_set = LabelledSet(samples, source.labels, source.task, source.report)
    split = split_dataset(data_set, SplitConfig(ratios=[0.5, 0.5, 0.0], patient_id=patient_id,
                                                use_predefined=False), seed=seed)  # fmt: skip
    order = {id(s): n for n, s in enumerate(samples)}
    patients = [""] * len(samples)
    for s, pid in zip(split.samples, split.patients, strict=True):
        patients[order[id(s)]] = pid
    halves = {name: [order[id(split.samples[i])] for i in split.indices(name)] for name in ("train", "val")}
    if not halves["train"] or not halves["val"]:
        raise DataSourceError("The site data has too few patients to split into calibration and check halves.")
    targets = _targets(samples, labels, manifest.task)
    fit_i, chk_i = np.array(halves["train"]), np.array(halves["val"])
    logits = cal.logits_from_probs(probs, manifest.task)
    t_new = cal.fit_temperature(logits[fit_i], targets[fit_i], manifest.task)
    after = cal.apply_temperature(logits, t_new, manifest.task)
    points = _fit_points(after[fit_i], targets[fit_i], labels, manifest.task, target_sensitivity)
    old_points = {k: v for k, v in (manifest.thresholds or {}).items() if k in labels}
    if manifest.task == "multiclass" and len(labels) == 2:
        old_points = {labels[1]: 0.5}  # the arg-max rule of a two-class model
    chk_patients = [patients[i] for i in chk_i]
    before_fig = _figures(probs[chk_i], targets[chk_i], labels, manifest.task, chk_patients, old_points, n_boot)
    after_fig = _figures(after[chk_i], targets[chk_i], labels, manifest.task, chk_patients, points, n_boot)

    t_old = float(getattr(manifest, "temperature", None) or 1.0)
    new = copy.deepcopy(manifest)
    new.temperature = round(t_old * t_new, 6)
    if manifest.task == "multilabel":
        new.thresholds = {**(manifest.thresholds or {}), **points}
    if getattr(manifest, "scope", None):
        scope_info: dict[str, Any] = {"fitted": False, "why": "kept the source model's statistics"}
    else:  # the source has no out-of-scope statistics: fit them on the site's calibration half
        new.scope, scope_info = _fit_scope(features, fit_i, chk_i, min_scope_images)
    today = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    rule = f"sensitivity >= {target_sensitivity:g}" if target_sensitivity is not None else "Youden's J"
    summary: dict[str, Any] = {
        "source_model": {"name": manifest.name, "version": manifest.version, "sha256": digest},
        "date": today,
        "site_data": {"path": str(data), "n_images": len(kept), "n_patients": len(set(patients)),
                      "per_class": source.label_counts(), "unreadable": len(bad) + source.report.n_unreadable,
                      "out_of_scope": int(sum(not f for f in in_scope)), "patient_ids": split.source,
                      "calibration_half": {"images": len(fit_i), "patients": len({patients[i] for i in fit_i})},
                      "check_half": {"images": len(chk_i), "patients": len(set(chk_patients))}},
        "temperature": {"before": t_old, "fitted": round(t_new, 6), "after": new.temperature},
        "operating_points": {"rule": rule, "before": old_points, "after": points},
        "scope_statistics": scope_info,
        "check_before": before_fig,
        "check_after": after_fig,
    }  # fmt: skip
    if manifest.task == "multiclass":
        summary["operating_points"]["note"] = (
            "a multi-class model shows its top class; the operating point is a figure for the positive "
            "class's probability (sensitivity/specificity at it), recorded here")
    new.provenance.extra = {**new.provenance.extra, "site_calibration": summary}
    new.provenance.metrics = {**new.provenance.metrics, "site_check": {
        "n_images": after_fig["n_images"], "n_patients": after_fig["n_patients"], "accuracy": after_fig["accuracy"],
        "macro_auroc": after_fig["macro_auroc"], "ece": after_fig["ece"]}}  # fmt: skip
    new.provenance.date = today
    return SiteCalibration(new.validate(), source_path, digest, summary)


def install_site_version(result: SiteCalibration, name: str | None = None) -> Any:
    """Install the calibrated version as a NEW library model (the source file is only read)."""
    from ml.models import library
    from ml.models.bundle import load_state_dict

    m = result.manifest
    base = name or f"{result.summary['source_model']['name']}-site"
    chosen, n = base, 2
    while library.find_model(chosen) is not None:
        chosen, n = f"{base}-{n}", n + 1
    m.name = chosen
    m.version = f"{result.summary['source_model']['version']}+site.{result.summary['date'][:10].replace('-', '')}"
    m.description = (m.description + f" Site-calibrated on {result.summary['site_data']['n_images']} images "
                     f"({result.summary['date'][:10]}).").strip()  # fmt: skip
    return library.install_state(load_state_dict(result.source_path), m.validate())


__all__ = ["SiteCalibration", "calibrate_on_site", "install_site_version"]
