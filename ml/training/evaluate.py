"""Evaluate a saved model on any labelled folder or CSV (``cxr evaluate``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from ml.errors import DataSourceError
from ml.progress import CancelToken, ProgressCallback
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
    metrics = compute_metrics(
        preds.probs,
        preds.targets,
        manifest.labels,
        manifest.task,
        patients=[patients[int(i)] for i in preds.indices],
        thresholds=manifest.thresholds,
        loss=preds.loss,
        n_boot=n_boot,
    )
    metrics["model"] = manifest.name
    metrics["data"] = str(data)
    metrics["skipped"] = [{"path": source.samples[i].path, "reason": r} for i, r in failed.items()]
    metrics["skipped"] += [{"path": p, "reason": r} for p, r in source.report.unreadable]
    return metrics
