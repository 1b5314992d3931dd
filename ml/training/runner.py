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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ml.errors import CxrError, DataSourceError
from ml.progress import CancelToken
from ml.training import build, distributed
from ml.training.config import TrainConfig
from ml.training.events import ErrorEvent, Event, EventWriter, Start
from ml.training.finish import finish
from ml.training.fit import CHECKPOINT_FORMAT as CHECKPOINT_FORMAT  # re-exported
from ml.training.fit import EpochCallback, Schedule, fit
from ml.training.fit import monitor_of as monitor_of
from ml.training.loop import memory_format
from ml.training.rundata import RunData, make_loaders, prepare_data
from ml.training.rundir import STOP_FILE as STOP_FILE
from ml.training.rundir import RunEnv, new_run_dir, seed_everything
from ml.training.rundir import TrainingStopped as TrainingStopped
from ml.training.rundir import TrainResult as TrainResult
from ml.training.rundir import default_runs_dir as default_runs_dir


def train_and_finish(
    env: RunEnv, cache_dir: Path | None, on_epoch: EpochCallback | None, final: bool
) -> TrainResult:
    """The phases in order: data -> loaders -> model (head only, if asked) -> fit -> finish."""
    cfg = env.config
    data: RunData = prepare_data(env, cache_dir)
    loaders = make_loaders(cfg, data, env.ctx)
    built, origin = build.build_model(cfg, data.manifest)
    full = built.to(env.device, memory_format=memory_format(env.device))  # channels-last: faster steps
    arch = data.manifest.architecture
    criterion = build.build_criterion(cfg, data.task, loaders.train_ds.targets, len(data.labels))  # type: ignore[attr-defined]
    criterion = criterion.to(env.device)
    if cfg.head_only:
        from ml.training.head_only import prepare_head_only

        head = prepare_head_only(env, full, arch, loaders, data.labels, data.task)
        model, optimizer, loaders = head.model, head.optimizer, head.loaders
    else:
        model, optimizer = full, build.build_optimizer(cfg, full.parameters())
    _, mode = monitor_of(cfg)
    schedule = Schedule(*build.build_scheduler(cfg, optimizer, loaders.steps_per_epoch(cfg.batch_size), mode))
    fitted = fit(
        model, optimizer, loaders, env=env, criterion=criterion, schedule=schedule, labels=data.labels,
        task=data.task, arch=arch, head_only=cfg.head_only, on_epoch=on_epoch,
    )  # fmt: skip
    return finish(env, data, loaders, model, criterion, fitted, export_model=full, origin=origin, final=final)


def run_training(
    config: TrainConfig,
    run_dir: str | os.PathLike[str] | None = None,
    *,
    resume: bool = False,
    events_path: str | os.PathLike[str] | None = None,
    event_stream: Any = None,
    listeners: list[Callable[[Event], None]] | None = None,
    cancel: CancelToken | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    on_epoch: EpochCallback | None = None,
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
        env = RunEnv(config, path, ctx, events, cancel, resume)
        return train_and_finish(env, Path(cache_dir) if cache_dir else None, on_epoch, final)
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
