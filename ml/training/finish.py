"""The end of a training run: best weights -> validation/test metrics -> metrics.json -> model file."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from torch import nn

from ml import __version__
from ml.models.manifest import ModelManifest
from ml.training import distributed
from ml.training.checkpoint import load_checkpoint
from ml.training.events import Finished
from ml.training.fit import FitResult, predict
from ml.training.metrics import compute_metrics, summary, write_metrics
from ml.training.posthoc import PostHoc, add_test_figures, fit_posthoc, not_fitted
from ml.training.rundata import Loaders, RunData
from ml.training.rundir import RunEnv, TrainResult


def finish(
    env: RunEnv,
    data: RunData,
    loaders: Loaders,
    model: nn.Module,
    criterion: nn.Module,
    fitted: FitResult,
    *,
    export_model: nn.Module | None = None,
    origin: str = "",
    final: bool = True,
) -> TrainResult:
    """Reload the best weights into ``model``, evaluate on validation and test, write metrics.json and
    the model file (``export_model``: the whole network when ``model`` is only its head).

    ``final=False`` (an auto-tune trial) stops after reloading the best weights.
    """
    cfg, ctx, run_dir = env.config, env.ctx, env.run_dir
    best_path = run_dir / "checkpoints" / "best.pt"
    distributed.barrier(ctx)
    if best_path.is_file():
        model.load_state_dict(load_checkpoint(best_path)["model"])
    if not final:
        return TrainResult(run_dir, None, None, {}, fitted.best_epoch, fitted.best_value)
    labels, task = data.labels, data.task
    val_metrics = None
    post = not_fitted("the validation split is empty", task, labels)
    if len(loaders.val_ds):  # type: ignore[arg-type]
        vp, vt, vi, vloss = predict(env, model, criterion, loaders.val, task)
        post = fit_posthoc(vp, vt, labels, task, cfg.target_sensitivity)  # validation only
        val_patients = data.patients("val")
        val_metrics = compute_metrics(
            post.apply(vp, task), vt, labels, task, thresholds=_metric_thresholds(post, task), loss=vloss,
            patients=[val_patients[int(i)] for i in vi], n_boot=0,
        )  # fmt: skip
    thresholds = _metric_thresholds(post, task)
    tp_raw, tt, ti, tloss = predict(env, model, criterion, loaders.test, task)
    tp = post.apply(tp_raw, task)  # the test split is evaluated with the validation temperature
    add_test_figures(post, tp_raw, tp, tt, labels, task)
    test_patients = data.patients("test")
    test_metrics = compute_metrics(
        tp, tt, labels, task, thresholds=thresholds, loss=tloss,
        patients=[test_patients[int(i)] for i in ti], n_boot=cfg.bootstrap, seed=cfg.seed,
    )  # fmt: skip
    if not ctx.is_main:
        return TrainResult(run_dir, None, None, test_metrics, fitted.best_epoch, fitted.best_value)
    report = data.data.report
    misclassified = _misclassified(tp, tt, ti, data.split.subset("test"), labels, task, thresholds)
    metrics = {
        "test": test_metrics,
        "val": val_metrics,
        "thresholds": post.thresholds,
        "calibration": post.calibration,
        "operating_point": post.operating_point or None,
        "best_epoch": fitted.best_epoch,
        "monitor": fitted.monitor,
        "best_value": fitted.best_value,
        "history": fitted.history,
        "split": data.split.summary(),
        "misclassified": misclassified,
        "data": {"source": report.source, "kind": report.kind, "per_class": report.per_class},
    }
    metrics_path = run_dir / "metrics.json"
    write_metrics(metrics_path, metrics)
    manifest = final_manifest(env, data, test_metrics, post.thresholds, fitted.best_epoch, origin)
    manifest = replace(manifest, temperature=post.temperature)
    from ml.models.bundle import save_model

    model_path = save_model(run_dir / "model.safetensors", export_model or model, manifest)
    installed = None
    if cfg.install:
        from ml.models.library import install_model_file

        installed = install_model_file(model_path).path
    env.events.emit(
        Finished(
            model_path=str(model_path), metrics_path=str(metrics_path), split_path=str(run_dir / "split.csv"),
            metrics=summary(test_metrics), installed=str(installed) if installed else None,
        )
    )  # fmt: skip
    return TrainResult(
        run_dir, model_path, metrics_path, metrics, fitted.best_epoch, fitted.best_value, installed
    )


def _metric_thresholds(post: PostHoc, task: str) -> dict[str, float] | None:
    """The thresholds compute_metrics applies (multi-label only: multi-class metrics use the top class)."""
    return post.thresholds if task == "multilabel" else None


def final_manifest(
    env: RunEnv,
    data: RunData,
    test_metrics: dict[str, Any],
    thresholds: dict[str, float] | None,
    best_epoch: int,
    origin: str,
) -> ModelManifest:
    """The run's manifest with the operating points and the provenance (data, split, metrics, config)."""
    cfg, report, split = env.config, data.data.report, data.split
    s = split.summary()["splits"]
    r = cfg.split.ratios
    provenance = replace(
        data.manifest.provenance,
        training_data=f"{report.kind} {report.source}: "
        + ", ".join(f"{k} {v}" for k, v in report.per_class.items()),
        split=f"{split.level}-level split ({split.source}), ratios {r[0]:.2f}/{r[1]:.2f}/{r[2]:.2f}, "
        f"seed {cfg.seed}: "
        + ", ".join(f"{k} {v['images']} images / {v['patients']} patients" for k, v in s.items()),
        metrics={
            "test": summary(test_metrics),
            "per_class_auroc": {k: v.get("auroc") for k, v in test_metrics["per_class"].items()},
            "best_epoch": best_epoch,
        },
        date=datetime.now().isoformat(timespec="seconds"),
        app_version=__version__,
        extra={"config": cfg.to_dict(), "split_counts": s, "started_from": origin, "run": env.run_dir.name},
    )
    return replace(data.manifest, thresholds=thresholds, provenance=provenance)


def _misclassified(
    probs, targets, idx, samples, labels, task, thresholds, limit: int = 100
) -> list[dict[str, Any]]:  # noqa: ANN001
    out = []
    for p, t, i in zip(probs, targets, idx, strict=True):
        s = samples[int(i)]
        if task == "multiclass":
            top = int(p.argmax())
            if top != int(t):
                out.append(
                    {
                        "path": s.path,
                        "label": labels[int(t)],
                        "predicted": labels[top],
                        "probability": round(float(p[top]), 4),
                    }
                )
        else:
            thr = thresholds or {}
            pred = {labels[j] for j in range(len(labels)) if float(p[j]) >= thr.get(labels[j], 0.5)}
            truth = {labels[j] for j in range(len(labels)) if float(t[j]) > 0.5}
            if pred != truth:
                out.append({"path": s.path, "labels": sorted(truth), "predicted": sorted(pred)})
        if len(out) >= limit:
            break
    return out
