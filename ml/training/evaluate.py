"""Evaluate a saved model on any labelled folder or CSV (``cxr evaluate``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ml.errors import DataSourceError
from ml.progress import CancelToken, ProgressCallback
from ml.training import calibration as cal
from ml.training.config import DataConfig
from ml.training.dataset import DecodedCache, XrayDataset, warm_cache
from ml.training.loop import MaskedBCEWithLogits, evaluate
from ml.training.metrics import compute_metrics


def evaluate_model(
    model_path: str | os.PathLike[str],
    data: str | os.PathLike[str],
    *,
    preset: str = "auto",
    batch_size: int = 32,
    device: str = "auto",
    patient_id: str = "auto",
    n_boot: int = 200,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Metrics (as in metrics.json's "test" part) of the model on every readable image of ``data``."""
    from ml.inference.device import choose_device
    from ml.models.bundle import load_model
    from ml.training.presets import load_source
    from ml.training.splits import resolve_patient_ids

    dev = choose_device(device)
    model, manifest = load_model(model_path, dev)
    source = load_source(
        DataConfig.from_dict(
            {"path": str(data), "preset": preset, "labels": list(manifest.labels), "frontal_only": False}
        ),  # fmt: skip
        progress,
        cancel,
    )
    if source.task != manifest.task:
        raise DataSourceError(
            f"The data is {source.task} but the model {manifest.name} is {manifest.task}; they do not match."
        )
    with tempfile.TemporaryDirectory(prefix="cxr-eval-") as tmp:
        cache = DecodedCache(Path(tmp), manifest)
        failed = dict(warm_cache(cache, source.samples, progress=progress, cancel=cancel))
        samples = [s for i, s in enumerate(source.samples) if i not in failed]
        if not samples:
            raise DataSourceError(f"None of the images in {data} could be decoded.")
        ds = XrayDataset(samples, manifest.labels, manifest.task, cache)
        loader = DataLoader(ds, batch_size=batch_size)
        criterion = torch.nn.CrossEntropyLoss() if manifest.task == "multiclass" else MaskedBCEWithLogits()
        preds = evaluate(model, criterion, loader, dev, manifest.task)
    patients, _, _ = resolve_patient_ids(samples, patient_id)
    probs = preds.probs
    if manifest.temperature is not None:  # as the predictor: logits / T
        scaled = cal.apply_temperature(cal.logits_from_probs(probs.numpy(), manifest.task), manifest.temperature,
                                       manifest.task)  # fmt: skip
        probs = torch.from_numpy(scaled.astype(np.float32))
    metrics = compute_metrics(
        probs,
        preds.targets,
        manifest.labels,
        manifest.task,
        patients=[patients[int(i)] for i in preds.indices],
        thresholds=manifest.thresholds,
        loss=preds.loss,
        n_boot=n_boot,
    )
    metrics.update(_calibration(probs.numpy(), preds.targets.numpy(), manifest))
    metrics["model"] = manifest.name
    metrics["data"] = str(data)
    metrics["skipped"] = [{"path": source.samples[i].path, "reason": r} for i, r in failed.items()]
    metrics["skipped"] += [{"path": p, "reason": r} for p, r in source.report.unreadable]
    return metrics


def _calibration(probs: np.ndarray, targets: np.ndarray, manifest: Any) -> dict[str, Any]:
    """ECE and reliability bins on this data (with the model's temperature), and the model's operating
    point (two classes: its threshold on P(second class)) with the sensitivity/specificity it reaches here."""
    c = cal.calibration_summary(probs.astype(np.float64), targets, manifest.task)
    out: dict[str, Any] = {"calibration": {"split": "this data", "temperature": manifest.temperature,
                                           "ece": c["ece"], "reliability": c["reliability"], "n": c["n"]}}  # fmt: skip
    labels, points = list(manifest.labels), manifest.thresholds or {}
    if manifest.task == "multiclass" and len(labels) == 2 and labels[1] in points and len(probs):
        t = float(points[labels[1]])
        out["operating_point"] = {"label": labels[1], "threshold": t,
                                  "text": f"operating point (from the model): threshold {t:.3f} on P({labels[1]})",
                                  "data": cal.sensitivity_specificity(probs[:, 1], targets == 1, t)}  # fmt: skip
    return out
