"""The training phase of a run: epochs with validation, best/last checkpoints, cancel, resume, early stop.

:func:`fit` trains ``model`` in place (torchvision references style: it receives the model, the
optimiser, the loaders and the rest, and builds nothing but the gradient scaler) and returns a
:class:`FitResult`. What one epoch needs is passed around as one frozen :class:`Fitting`; what changes
from epoch to epoch (best value, history) lives in a :class:`Progress`, which a resumable checkpoint
saves and restores.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from ml.errors import DataSourceError
from ml.training import build, distributed
from ml.training.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from ml.training.config import TrainConfig
from ml.training.events import BatchDone, CheckpointSaved, EarlyStop, EpochEnd, EpochStart, Stopped
from ml.training.loop import EpochState, evaluate, recalibrate_batchnorm, train_one_epoch
from ml.training.metrics import compute_metrics
from ml.training.rundata import Loaders
from ml.training.rundir import RunEnv, TrainingStopped

CHECKPOINT_FORMAT = 1
EpochCallback = Callable[[int, float | None], None]  # (epoch from 1, monitored value); Optuna pruning


def monitor_of(config: TrainConfig) -> tuple[str, str]:
    """(metric name, "min" | "max")."""
    name = "val_loss" if config.monitor == "auto" else config.monitor
    return name, "min" if name == "val_loss" else "max"


def _improved(value: float | None, best: float | None, mode: str) -> bool:
    if value is None:
        return False
    if best is None:
        return True
    return value < best - 1e-12 if mode == "min" else value > best + 1e-12


@dataclass(frozen=True)
class Schedule:
    """A learning-rate scheduler and when it steps: "step" (every batch), "epoch", "plateau" or "none"."""

    scheduler: Any = None
    when: str = "none"


@dataclass
class Progress:
    """What changes from epoch to epoch (saved in the resumable checkpoint)."""

    best_value: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class FitResult:
    best_epoch: int
    best_value: float | None
    monitor: str
    history: list[dict[str, Any]]


@dataclass(frozen=True)
class Fitting:
    """Everything an epoch of :func:`fit` uses; built once per fit."""

    env: RunEnv
    model: nn.Module
    optimizer: torch.optim.Optimizer
    loaders: Loaders
    criterion: nn.Module
    schedule: Schedule
    scaler: torch.amp.GradScaler
    labels: list[str]
    task: str
    arch: str
    head_only: bool
    steps_per_epoch: int
    monitor: str
    mode: str
    on_epoch: EpochCallback | None

    def frozen_at(self, epoch: int) -> bool:
        return epoch < self.env.config.freeze_backbone_epochs and not self.head_only


def predict(
    env: RunEnv, model: nn.Module, criterion: nn.Module, loader: DataLoader, task: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Probabilities, targets and sample indices over ``loader`` (all ranks), and the mean loss."""
    preds = evaluate(model, criterion, loader, env.device, task, amp=env.amp)
    loss_sum, n = distributed.all_reduce_sum(env.ctx, [preds.loss_sum, float(preds.n)])
    probs, targets, idx = distributed.gather_predictions(env.ctx, preds.probs, preds.targets, preds.indices)
    return probs, targets, idx, loss_sum / n if n else float("nan")


# --------------------------------------------------------------------------- checkpoints


def _checkpoint_state(f: Fitting, epoch: int, state: EpochState | None, p: Progress) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT, "epoch": epoch,
        "epoch_state": None if state is None else {
            "loss_sum": state.loss_sum, "images": state.images, "batches_done": state.batches_done,
            "seconds": state.seconds},
        "model": f.model.state_dict(), "optimizer": f.optimizer.state_dict(),
        "scheduler": f.schedule.scheduler.state_dict() if f.schedule.scheduler is not None else None,
        "scaler": f.scaler.state_dict(), "rng": rng_state(),
        "best_value": p.best_value, "best_epoch": p.best_epoch, "bad_epochs": p.bad_epochs,
        "history": p.history, "world_size": f.env.ctx.world_size, "config": f.env.config.to_json(),
    }  # fmt: skip


def _save_last(f: Fitting, epoch: int, state: EpochState | None, p: Progress, kind: str) -> Path:
    path = f.env.run_dir / "checkpoints" / "last.pt"
    if f.env.is_main:
        save_checkpoint(path, _checkpoint_state(f, epoch, state, p))
        f.env.events.emit(
            CheckpointSaved(
                kind=kind, path=str(path), epoch=epoch + 1, batch=state.batches_done if state else 0
            )
        )
    distributed.barrier(f.env.ctx)
    return path


def _restore(f: Fitting) -> tuple[int, EpochState | None, Progress]:
    ck = load_checkpoint(f.env.run_dir / "checkpoints" / "last.pt")
    if ck.get("world_size", 1) != f.env.ctx.world_size:
        raise DataSourceError(
            f"This run was saved with {ck.get('world_size')} process(es); resume it with the same number."
        )
    f.model.load_state_dict(ck["model"])
    f.optimizer.load_state_dict(ck["optimizer"])
    if f.schedule.scheduler is not None and ck["scheduler"] is not None:
        f.schedule.scheduler.load_state_dict(ck["scheduler"])
    f.scaler.load_state_dict(ck["scaler"])
    progress = Progress(ck["best_value"], ck["best_epoch"], ck["bad_epochs"], list(ck["history"]))
    set_rng_state(ck["rng"])
    es = ck["epoch_state"]
    return ck["epoch"], EpochState(**es) if es else None, progress


# --------------------------------------------------------------------------- training


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loaders: Loaders,
    *,
    env: RunEnv,
    criterion: nn.Module,
    schedule: Schedule,
    labels: list[str],
    task: str,
    arch: str,
    head_only: bool = False,
    on_epoch: EpochCallback | None = None,
) -> FitResult:
    """Train for ``config.epochs`` (resuming from ``last.pt`` when ``env.resume``); raises
    :class:`TrainingStopped` after a stop request (a resumable checkpoint saved first)."""
    cfg, ctx = env.config, env.ctx
    monitor, mode = monitor_of(cfg)
    f = Fitting(
        env, model, optimizer, loaders, criterion, schedule, torch.amp.GradScaler("cuda", enabled=env.amp),
        labels, task, arch, head_only, loaders.steps_per_epoch(cfg.batch_size), monitor, mode, on_epoch,
    )  # fmt: skip
    progress, start_epoch, state = Progress(), 0, None
    if env.resume and (env.run_dir / "checkpoints" / "last.pt").is_file():
        start_epoch, state, progress = _restore(f)
    stop = env.stopper()
    ddp: list[Any] = [None, None]  # (DistributedDataParallel wrapper, frozen when wrapped)
    t_run = time.monotonic()
    for epoch in range(start_epoch, cfg.epochs):
        if progress.history and progress.history[-1].get("early_stop"):
            break
        frozen = f.frozen_at(epoch)
        if not head_only:  # head-only: the model is the head itself
            build.set_backbone_frozen(model, arch, frozen)
        loaders.train_sampler.set_epoch(epoch)
        loaders.train_ds.set_epoch(epoch)  # type: ignore[attr-defined]
        loaders.train_sampler.set_start((state.batches_done if state else 0) * cfg.batch_size)
        lr = optimizer.param_groups[0]["lr"]
        if ctx.is_main:
            env.events.emit(EpochStart(epoch=epoch + 1, epochs=cfg.epochs, lr=lr, frozen_backbone=frozen))
        if not ctx.distributed:
            net = model
        else:  # wrapped in DistributedDataParallel under torchrun (re-wrapped on unfreeze)
            if ddp[0] is None or ddp[1] != frozen:
                from torch.nn.parallel import DistributedDataParallel as DDP

                ids = [env.device.index] if env.device.type == "cuda" else None
                ddp[:] = [DDP(model, device_ids=ids), frozen]
            net = ddp[0]
        net.train()
        if frozen:
            build.freeze_batchnorm(model, arch)
        state, stopped = _train_epoch(f, net, epoch, state or EpochState(), progress, stop)
        if stopped:
            path = _save_last(f, epoch, state, progress, "stop")
            if ctx.is_main:
                env.events.emit(Stopped(reason="cancelled", checkpoint=str(path)))
            raise TrainingStopped(env.run_dir)
        _end_epoch(f, epoch, state, progress, t_run, start_epoch)
        state = None
    if ctx.is_main and progress.history and progress.history[-1].get("early_stop"):
        env.events.emit(
            EarlyStop(
                epoch=progress.history[-1]["epoch"], monitor=monitor, best_value=progress.best_value,
                patience=cfg.patience,
            )
        )  # fmt: skip
    return FitResult(progress.best_epoch, progress.best_value, monitor, progress.history)


def _train_epoch(
    f: Fitting, net: nn.Module, epoch: int, state: EpochState, progress: Progress, stop: Callable[[], bool]
) -> tuple[EpochState, bool]:
    cfg, ctx = f.env.config, f.env.ctx
    last_emit = [0.0]
    every = cfg.checkpoint_every_batches

    def on_batch(done: int, total: int, loss: float, images: int) -> None:
        now = time.monotonic()
        if ctx.is_main and (now - last_emit[0] >= 0.2 or done in (1, total)):
            last_emit[0] = now
            ips = images * ctx.world_size / max(state.seconds, 1e-9)
            per_batch = state.seconds / max(done, 1)
            eta = per_batch * (total - done) + per_batch * total * (cfg.epochs - epoch - 1)
            f.env.events.emit(
                BatchDone(
                    epoch=epoch + 1, batch=done, batches=total, loss=loss, images_per_s=round(ips, 2),
                    eta_s=round(eta, 1),
                )
            )  # fmt: skip
        if every and done % every == 0 and done < total:
            _save_last(f, epoch, state, progress, "periodic")

    sched = f.schedule.scheduler if f.schedule.when == "step" else None
    return train_one_epoch(
        net, f.criterion, f.optimizer, f.loaders.train, f.env.device, state=state, batches=f.steps_per_epoch,
        scheduler=sched, scaler=f.scaler, amp=f.env.amp, grad_clip=cfg.grad_clip, on_batch=on_batch,
        should_stop=stop,
    )  # fmt: skip


def _end_epoch(
    f: Fitting, epoch: int, state: EpochState, p: Progress, t_run: float, start_epoch: int
) -> None:
    """Validation, best checkpoint, scheduler step, early-stop decision, epoch_end event, last checkpoint."""
    env, cfg, ctx = f.env, f.env.config, f.env.ctx
    loss_sum, images = distributed.all_reduce_sum(ctx, [state.loss_sum, float(state.images)])
    row: dict[str, Any] = {
        "epoch": epoch + 1,
        "train_loss": loss_sum / images if images else None,
        "lr": f.optimizer.param_groups[0]["lr"],
        "seconds": round(state.seconds, 3),
        "images_per_s": round(images / max(state.seconds, 1e-9), 2),
    }
    if cfg.precise_bn_batches and not f.head_only and not f.frozen_at(epoch):
        f.loaders.train_sampler.set_start(0)  # the same batches whether or not the run was resumed
        recalibrate_batchnorm(f.model, f.loaders.train, env.device, cfg.precise_bn_batches)
    if len(f.loaders.val_ds):  # type: ignore[arg-type]
        probs, targets, _, val_loss = predict(env, f.model, f.criterion, f.loaders.val, f.task)
        m = compute_metrics(probs, targets, f.labels, f.task, n_boot=0)
        row.update(
            val_loss=val_loss,
            val_accuracy=m["accuracy"],
            val_auroc=m["macro"]["auroc"],
            val_f1=m["macro"]["f1"],
        )
    value = row.get(f.monitor)
    if value is None:  # no validation split: the last epoch is the best
        value = -float(epoch) if f.mode == "min" else float(epoch)
    best = _improved(value, p.best_value, f.mode)
    if best:
        p.best_value, p.best_epoch, p.bad_epochs = value, epoch + 1, 0
        if ctx.is_main:
            path = env.run_dir / "checkpoints" / "best.pt"
            save_checkpoint(path, {"model": f.model.state_dict(), "epoch": epoch + 1, "value": value})
            env.events.emit(CheckpointSaved(kind="best", path=str(path), epoch=epoch + 1, batch=0))
    else:
        p.bad_epochs += 1
    scheduler, when = f.schedule.scheduler, f.schedule.when
    if scheduler is not None and when == "epoch":
        scheduler.step()
    elif scheduler is not None and when == "plateau" and row.get(f.monitor) is not None:
        scheduler.step(row[f.monitor])
    row["best"] = best
    row["early_stop"] = bool(
        cfg.early_stopping
        and len(f.loaders.val_ds)
        and p.bad_epochs >= cfg.patience
        and epoch + 1 < cfg.epochs  # type: ignore[arg-type]
    )
    p.history.append(row)
    done_epochs = epoch + 1 - start_epoch
    eta = (time.monotonic() - t_run) / max(done_epochs, 1) * (cfg.epochs - epoch - 1)
    if ctx.is_main:
        env.events.emit(
            EpochEnd(epochs=cfg.epochs, monitor=f.monitor, monitor_value=value, eta_s=round(eta, 1), **row)
        )
    if f.on_epoch is not None:
        f.on_epoch(epoch + 1, row.get(f.monitor))
    _save_last(f, epoch + 1, None, p, "last")
