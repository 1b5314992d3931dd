"""A whole training run: data -> split -> cache -> train with checkpoints -> test -> model file.

:func:`run_training` is what ``cxr train`` (and the wizard, through that command) runs, in one
process or under torchrun. Its run folder holds everything::

    <run>/config.json           the TrainConfig
    <run>/events.jsonl          progress events (see ml.training.events)
    <run>/data_report.json      images per class, unreadable files, duplicates, filtered counts
    <run>/split.csv             path, labels, patient, split (one row per image)
    <run>/cache/                decoded, windowed, resized inputs (.npy, keyed by content + preprocessing)
    <run>/checkpoints/last.pt   resumable state (epoch end, cancel, every N batches)
    <run>/checkpoints/best.pt   weights of the best epoch by the monitored metric
    <run>/metrics.json          test (and validation) metrics
    <run>/model.safetensors     the trained model with its manifest

Cancel: create ``<run>/STOP`` (or cancel the CancelToken); the run stops after the current batch,
saves a resumable checkpoint and raises :class:`TrainingStopped`. ``run_training(resume=True)``
with the same run folder continues exactly where it stopped (or where a killed run last saved).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from ml.errors import CxrError, DataSourceError
from ml.progress import CancelToken
from ml.training import build, distributed, rundata
from ml.training.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from ml.training.config import TrainConfig
from ml.training.dataset import ResumableSampler, XrayDataset
from ml.training.events import (
    BatchDone,
    CheckpointSaved,
    EarlyStop,
    EpochEnd,
    EpochStart,
    ErrorEvent,
    EventWriter,
    Start,
    Stopped,
)
from ml.training.finish import finish_run
from ml.training.loop import EpochState, evaluate, recalibrate_batchnorm, train_one_epoch
from ml.training.metrics import compute_metrics
from ml.training.rundir import STOP_FILE as STOP_FILE  # re-exported
from ml.training.rundir import Stopper, new_run_dir, seed_everything
from ml.training.rundir import TrainingStopped as TrainingStopped
from ml.training.rundir import TrainResult as TrainResult
from ml.training.rundir import default_runs_dir as default_runs_dir

CHECKPOINT_FORMAT = 1


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


# --------------------------------------------------------------------------- the run


class Run:
    """State shared by the phases of one training run (built by :func:`run_training`)."""

    def __init__(
        self,
        config: TrainConfig,
        run_dir: Path,
        ctx: distributed.DistContext,
        events: EventWriter,
        cancel: CancelToken | None,
        resume: bool,
        cache_dir: Path | None,
        on_epoch: Callable[[int, float | None], None] | None,
        final: bool,
    ) -> None:
        self.config, self.run_dir, self.ctx, self.events = config, run_dir, ctx, events
        self.cancel, self.resume, self.on_epoch, self.final = cancel, resume, on_epoch, final
        self.cache_dir = cache_dir or run_dir / "cache"
        self.stop = Stopper(run_dir, cancel, ctx)
        self.device = ctx.device
        self.amp = bool(config.amp and self.device.type == "cuda")

    # ---- data (ml.training.rundata)
    def prepare_data(self) -> None:
        rundata.prepare_data(self)

    def _warm_cache(self) -> None:
        rundata.warm_run_cache(self)

    def _loader(self, name: str, train: bool) -> tuple[XrayDataset, DataLoader, ResumableSampler]:
        return rundata.make_loader(self, name, train)

    # ---- model
    def prepare_model(self) -> None:
        cfg = self.config
        self.train_ds, self.train_loader, self.train_sampler = self._loader("train", True)
        self.val_ds, self.val_loader, _ = self._loader("val", False)
        self.test_ds, self.test_loader, _ = self._loader("test", False)
        model, origin = build.build_model(cfg, self.manifest)
        self.origin = origin
        self.model = model.to(self.device)
        self.export_model = self.model  # what model.safetensors holds (the full model in head-only mode)
        self.criterion = build.build_criterion(cfg, self.task, self.train_ds.targets, len(self.labels)).to(
            self.device
        )
        self.optimizer = build.build_optimizer(cfg, self.model.parameters())
        self.steps_per_epoch = len(self.train_sampler.epoch_indices()) // cfg.batch_size + bool(
            len(self.train_sampler.epoch_indices()) % cfg.batch_size
        )
        self.monitor, self.mode = monitor_of(cfg)
        self.scheduler, self.sched_when = build.build_scheduler(
            cfg, self.optimizer, self.steps_per_epoch, self.mode
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self._ddp: torch.nn.Module | None = None
        self._ddp_frozen: bool | None = None

    def net(self, frozen: bool) -> torch.nn.Module:
        """The model to call: wrapped in DistributedDataParallel under torchrun (re-wrapped on unfreeze)."""
        if not self.ctx.distributed:
            return self.model
        if self._ddp is None or self._ddp_frozen != frozen:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self._ddp = DDP(self.model, device_ids=ids)
            self._ddp_frozen = frozen
        return self._ddp

    # ---- checkpoints
    def checkpoint_state(self, epoch: int, state: EpochState | None) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT, "epoch": epoch,
            "epoch_state": None if state is None else {
                "loss_sum": state.loss_sum, "images": state.images, "batches_done": state.batches_done,
                "seconds": state.seconds},
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(), "rng": rng_state(),
            "best_value": self.best_value, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
            "history": self.history, "world_size": self.ctx.world_size, "config": self.config.to_json(),
        }  # fmt: skip

    def save_last(self, epoch: int, state: EpochState | None, kind: str) -> Path:
        path = self.run_dir / "checkpoints" / "last.pt"
        if self.ctx.is_main:
            save_checkpoint(path, self.checkpoint_state(epoch, state))
            self.events.emit(
                CheckpointSaved(
                    kind=kind,
                    path=str(path),
                    epoch=epoch + 1,
                    batch=state.batches_done if state else 0,
                )
            )
        distributed.barrier(self.ctx)
        return path

    def restore(self) -> tuple[int, EpochState | None]:
        ck = load_checkpoint(self.run_dir / "checkpoints" / "last.pt")
        if ck.get("world_size", 1) != self.ctx.world_size:
            raise DataSourceError(
                f"This run was saved with {ck.get('world_size')} process(es); resume it with the same number."
            )
        self.model.load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        if self.scheduler is not None and ck["scheduler"] is not None:
            self.scheduler.load_state_dict(ck["scheduler"])
        self.scaler.load_state_dict(ck["scaler"])
        self.best_value, self.best_epoch = ck["best_value"], ck["best_epoch"]
        self.bad_epochs, self.history = ck["bad_epochs"], list(ck["history"])
        set_rng_state(ck["rng"])
        es = ck["epoch_state"]
        return ck["epoch"], EpochState(**es) if es else None

    # ---- training
    def fit(self) -> None:
        cfg, ctx = self.config, self.ctx
        self.best_value: float | None = None
        self.best_epoch, self.bad_epochs = 0, 0
        self.history: list[dict[str, Any]] = []
        start_epoch, state = 0, None
        if self.resume and (self.run_dir / "checkpoints" / "last.pt").is_file():
            start_epoch, state = self.restore()
        t_run = time.monotonic()
        for epoch in range(start_epoch, cfg.epochs):
            if self.history and self.history[-1].get("early_stop"):
                break
            frozen = epoch < cfg.freeze_backbone_epochs and not cfg.head_only
            if not cfg.head_only:  # head-only: self.model is the head itself
                build.set_backbone_frozen(self.model, self.manifest.architecture, frozen)
            self.train_sampler.set_epoch(epoch)
            self.train_ds.set_epoch(epoch)
            self.train_sampler.set_start((state.batches_done if state else 0) * cfg.batch_size)
            lr = self.optimizer.param_groups[0]["lr"]
            if ctx.is_main:
                self.events.emit(
                    EpochStart(epoch=epoch + 1, epochs=cfg.epochs, lr=lr, frozen_backbone=frozen)
                )
            net = self.net(frozen)
            net.train()
            if frozen:
                build.freeze_batchnorm(self.model, self.manifest.architecture)
            state, stopped = self._train_epoch(net, epoch, state, t_run, start_epoch)
            if stopped:
                path = self.save_last(epoch, state, "stop")
                if ctx.is_main:
                    self.events.emit(Stopped(reason="cancelled", checkpoint=str(path)))
                raise TrainingStopped(self.run_dir)
            self._end_epoch(epoch, state, t_run, start_epoch)
            state = None
        if ctx.is_main and self.history and self.history[-1].get("early_stop"):
            self.events.emit(
                EarlyStop(
                    epoch=self.history[-1]["epoch"],
                    monitor=self.monitor,
                    best_value=self.best_value,
                    patience=cfg.patience,
                )
            )

    def _train_epoch(
        self, net: torch.nn.Module, epoch: int, state: EpochState | None, t_run: float, start_epoch: int
    ) -> tuple[EpochState, bool]:
        cfg, ctx = self.config, self.ctx
        last_emit = [0.0]
        every = cfg.checkpoint_every_batches

        def on_batch(done: int, total: int, loss: float, images: int) -> None:
            now = time.monotonic()
            st = self._state
            if ctx.is_main and (now - last_emit[0] >= 0.2 or done in (1, total)):
                last_emit[0] = now
                ips = images * ctx.world_size / max(st.seconds, 1e-9)
                per_batch = st.seconds / max(done, 1)
                eta = per_batch * (total - done) + per_batch * total * (cfg.epochs - epoch - 1)
                self.events.emit(
                    BatchDone(
                        epoch=epoch + 1,
                        batch=done,
                        batches=total,
                        loss=loss,
                        images_per_s=round(ips, 2),
                        eta_s=round(eta, 1),
                    )
                )
            if every and done % every == 0 and done < total:
                self.save_last(epoch, st, "periodic")

        self._state = state or EpochState()
        sched = self.scheduler if self.sched_when == "step" else None
        return train_one_epoch(
            net,
            self.criterion,
            self.optimizer,
            self.train_loader,
            self.device,
            state=self._state,
            batches=self.steps_per_epoch,
            scheduler=sched,
            scaler=self.scaler,
            amp=self.amp,
            grad_clip=cfg.grad_clip,
            on_batch=on_batch,
            should_stop=self.stop,
        )

    def predict(self, loader: DataLoader) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
        preds = evaluate(self.model, self.criterion, loader, self.device, self.task, amp=self.amp)
        loss_sum, n = distributed.all_reduce_sum(self.ctx, [preds.loss_sum, float(preds.n)])
        probs, targets, idx = distributed.gather_predictions(
            self.ctx, preds.probs, preds.targets, preds.indices
        )
        return probs, targets, idx, loss_sum / n if n else float("nan")

    def _end_epoch(self, epoch: int, state: EpochState, t_run: float, start_epoch: int) -> None:
        cfg, ctx = self.config, self.ctx
        loss_sum, images = distributed.all_reduce_sum(ctx, [state.loss_sum, float(state.images)])
        train_loss = loss_sum / images if images else None
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "lr": self.optimizer.param_groups[0]["lr"],
            "seconds": round(state.seconds, 3),
            "images_per_s": round(images / max(state.seconds, 1e-9), 2),
        }
        frozen = epoch < cfg.freeze_backbone_epochs and not cfg.head_only
        if cfg.precise_bn_batches and not cfg.head_only and not frozen:
            self.train_sampler.set_start(0)  # the same batches whether or not the run was resumed
            recalibrate_batchnorm(self.model, self.train_loader, self.device, cfg.precise_bn_batches)
        if len(self.val_ds):
            probs, targets, _, val_loss = self.predict(self.val_loader)
            m = compute_metrics(probs, targets, self.labels, self.task, n_boot=0)
            row.update(
                val_loss=val_loss,
                val_accuracy=m["accuracy"],
                val_auroc=m["macro"]["auroc"],
                val_f1=m["macro"]["f1"],
            )
        value = row.get(self.monitor)
        if value is None:  # no validation split: the last epoch is the best
            value = -float(epoch) if self.mode == "min" else float(epoch)
        best = _improved(value, self.best_value, self.mode)
        if best:
            self.best_value, self.best_epoch, self.bad_epochs = value, epoch + 1, 0
            if ctx.is_main:
                path = self.run_dir / "checkpoints" / "best.pt"
                save_checkpoint(path, {"model": self.model.state_dict(), "epoch": epoch + 1, "value": value})
                self.events.emit(CheckpointSaved(kind="best", path=str(path), epoch=epoch + 1, batch=0))
        else:
            self.bad_epochs += 1
        if self.scheduler is not None and self.sched_when == "epoch":
            self.scheduler.step()
        elif (
            self.scheduler is not None and self.sched_when == "plateau" and row.get(self.monitor) is not None
        ):
            self.scheduler.step(row[self.monitor])
        row["best"] = best
        row["early_stop"] = bool(
            cfg.early_stopping
            and len(self.val_ds)
            and self.bad_epochs >= cfg.patience
            and epoch + 1 < cfg.epochs
        )
        self.history.append(row)
        done_epochs = epoch + 1 - start_epoch
        eta = (time.monotonic() - t_run) / max(done_epochs, 1) * (cfg.epochs - epoch - 1)
        if ctx.is_main:
            self.events.emit(
                EpochEnd(
                    epochs=cfg.epochs,
                    monitor=self.monitor,
                    monitor_value=value,
                    eta_s=round(eta, 1),
                    **row,
                )
            )
        if self.on_epoch is not None:
            self.on_epoch(epoch + 1, row.get(self.monitor))
        self.save_last(epoch + 1, None, "last")

    # ---- final evaluation and the model file (ml.training.finish)
    def finish(self) -> TrainResult:
        return finish_run(self)


def run_training(
    config: TrainConfig,
    run_dir: str | os.PathLike[str] | None = None,
    *,
    resume: bool = False,
    events_path: str | os.PathLike[str] | None = None,
    event_stream: Any = None,
    listeners: list[Callable[[dict[str, Any]], None]] | None = None,
    cancel: CancelToken | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    on_epoch: Callable[[int, float | None], None] | None = None,
    final: bool = True,
) -> TrainResult:
    """Train (or resume) one run; returns where the model, metrics and split were written.

    Raises :class:`TrainingStopped` after a cancel (checkpoint saved), a CxrError for user errors.
    """
    from ml.inference.device import choose_device

    config.validate()
    ctx = distributed.init_distributed(choose_device(config.device))
    seed_everything(config.seed, config.deterministic)
    events = None
    try:
        path = Path(run_dir) if run_dir else None
        if ctx.is_main and path is None:
            path = new_run_dir(config)
        path = Path(distributed.broadcast_object(ctx, str(path)))
        if resume and not (path / "config.json").is_file():
            raise DataSourceError(f"{path} is not a training run folder (it has no config.json).")
        if ctx.is_main:
            path.mkdir(parents=True, exist_ok=True)
            (path / STOP_FILE).unlink(missing_ok=True)
            if not resume:
                config.save(path / "config.json")
        distributed.barrier(ctx)
        events = EventWriter(
            events_path or path / "events.jsonl", event_stream, enabled=ctx.is_main, listeners=listeners
        )
        events.emit(
            Start(
                run_dir=str(path),
                device=str(ctx.device),
                world_size=ctx.world_size,
                config=config.to_dict(),
                resumed=resume,
            )
        )
        run = Run(
            config, path, ctx, events, cancel, resume, Path(cache_dir) if cache_dir else None, on_epoch, final
        )
        run.prepare_data()
        run.prepare_model()
        if config.head_only:
            from ml.training.head_only import fit_head_only

            fit_head_only(run)
        else:
            run.fit()
        return run.finish()
    except TrainingStopped:
        raise
    except CxrError as exc:
        if events is not None:
            events.emit(ErrorEvent(message=str(exc), kind=type(exc).__name__))
        raise
    except Exception as exc:
        if events is not None:
            events.emit(
                ErrorEvent(
                    message=f"something went wrong ({type(exc).__name__}: {exc})",
                    kind=type(exc).__name__,
                )
            )
        raise
    finally:
        if events is not None:
            events.close()
        distributed.shutdown(ctx)
