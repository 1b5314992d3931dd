"""The end of a training run: best weights -> validation/test metrics -> metrics.json -> model file.

:func:`finish_run` is :meth:`ml.training.runner.Run.finish`.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from ml import __version__
from ml.training import distributed
from ml.training.checkpoint import load_checkpoint
from ml.training.events import Finished
from ml.training.metrics import choose_thresholds, compute_metrics, summary, write_metrics
from ml.training.rundir import TrainResult

if TYPE_CHECKING:
    from ml.training.runner import Run


def finish_run(run: Run) -> TrainResult:
    """Reload the best weights, evaluate on validation and test, write metrics.json and the model file."""
    cfg, ctx = run.config, run.ctx
    best_path = run.run_dir / "checkpoints" / "best.pt"
    distributed.barrier(ctx)
    if best_path.is_file():
        run.model.load_state_dict(load_checkpoint(best_path)["model"])
    if not run.final:
        return TrainResult(run.run_dir, None, None, {}, run.best_epoch, run.best_value)
    thresholds = None
    val_metrics = None
    if len(run.val_ds):
        vp, vt, vi, vloss = run.predict(run.val_loader)
        if run.task == "multilabel":
            thresholds = choose_thresholds(vp, vt, run.labels)
        val_patients = [run.split.patients[i] for i in run.split.indices("val")]
        val_metrics = compute_metrics(
            vp,
            vt,
            run.labels,
            run.task,
            thresholds=thresholds,
            loss=vloss,
            patients=[val_patients[int(i)] for i in vi],
            n_boot=0,
        )
    tp, tt, ti, tloss = run.predict(run.test_loader)
    test_patients = [run.split.patients[i] for i in run.split.indices("test")]
    test_metrics = compute_metrics(
        tp,
        tt,
        run.labels,
        run.task,
        thresholds=thresholds,
        loss=tloss,
        patients=[test_patients[int(i)] for i in ti],
        n_boot=cfg.bootstrap,
        seed=cfg.seed,
    )
    if not ctx.is_main:
        return TrainResult(run.run_dir, None, None, test_metrics, run.best_epoch, run.best_value)
    test_samples = run.split.subset("test")
    misclassified = _misclassified(tp, tt, ti, test_samples, run.labels, run.task, thresholds)
    metrics = {
        "test": test_metrics,
        "val": val_metrics,
        "thresholds": thresholds,
        "best_epoch": run.best_epoch,
        "monitor": run.monitor,
        "best_value": run.best_value,
        "history": run.history,
        "split": run.split.summary(),
        "misclassified": misclassified,
        "data": {
            "source": run.data.report.source,
            "kind": run.data.report.kind,
            "per_class": run.data.report.per_class,
        },
    }
    metrics_path = run.run_dir / "metrics.json"
    write_metrics(metrics_path, metrics)
    manifest = run.manifest
    manifest.thresholds = thresholds
    manifest.provenance.training_data = f"{run.data.report.kind} {run.data.report.source}: " + ", ".join(
        f"{k} {v}" for k, v in run.data.report.per_class.items()
    )
    s = run.split.summary()["splits"]
    r = cfg.split.ratios
    manifest.provenance.split = (
        f"{run.split.level}-level split ({run.split.source}), ratios {r[0]:.2f}/{r[1]:.2f}/{r[2]:.2f}, "
        f"seed {cfg.seed}: "
        + ", ".join(f"{k} {v['images']} images / {v['patients']} patients" for k, v in s.items())
    )
    manifest.provenance.metrics = {
        "test": summary(test_metrics),
        "per_class_auroc": {k: v.get("auroc") for k, v in test_metrics["per_class"].items()},
        "best_epoch": run.best_epoch,
    }
    manifest.provenance.date = datetime.now().isoformat(timespec="seconds")
    manifest.provenance.app_version = __version__
    manifest.provenance.extra = {
        "config": cfg.to_dict(),
        "split_counts": s,
        "started_from": run.origin,
        "run": run.run_dir.name,
    }
    from ml.models.bundle import save_model

    model_path = save_model(run.run_dir / "model.safetensors", run.export_model, manifest)
    installed = None
    if cfg.install:
        from ml.models.library import install_model_file

        installed = install_model_file(model_path).path
    run.events.emit(
        Finished(
            model_path=str(model_path),
            metrics_path=str(metrics_path),
            split_path=str(run.run_dir / "split.csv"),
            metrics=summary(test_metrics),
            installed=str(installed) if installed else None,
        )
    )
    return TrainResult(
        run.run_dir, model_path, metrics_path, metrics, run.best_epoch, run.best_value, installed
    )


def _misclassified(
    probs, targets, idx, samples, labels, task, thresholds, limit: int = 100
) -> list[dict[str, Any]]:  # noqa: ANN001
    out = []
    for p, t, i in zip(probs, targets, idx, strict=True):
        s = samples[int(i)]
        if task == "multiclass":
            pred = int(p.argmax())
            if pred != int(t):
                out.append(
                    {
                        "path": s.path,
                        "label": labels[int(t)],
                        "predicted": labels[pred],
                        "probability": round(float(p[pred]), 4),
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
