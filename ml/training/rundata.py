"""The data phase of a training run: source -> split -> decoded cache -> data loaders.

Functions of :class:`ml.training.runner.Run` (its ``prepare_data``, ``_warm_cache`` and ``_loader``
call these); they set the run's ``data``, ``split``, ``labels``, ``task``, ``manifest`` and ``cache``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch.utils.data import DataLoader

from ml.errors import DataSourceError
from ml.fileio import write_text_atomic
from ml.training import build, distributed
from ml.training.dataset import (
    DecodedCache,
    ResumableSampler,
    XrayDataset,
    class_balancing_weights,
    warm_cache,
)
from ml.training.events import CacheProgress, DataRead, SplitMade, WarningEvent
from ml.training.splits import Split, read_split_csv, split_dataset, write_split_csv
from ml.training.transforms import build_train_transform

if TYPE_CHECKING:
    from ml.training.runner import Run


def prepare_data(run: Run) -> None:
    """Load the data source, split it (or re-read split.csv on resume), warm the decoded cache."""
    from ml.training.presets import load_source

    cfg, ctx = run.config, run.ctx
    data = split = None
    if ctx.is_main:
        data = load_source(cfg.data, cancel=run.cancel)
        split_path = run.run_dir / "split.csv"
        if run.resume and split_path.is_file():
            split = read_split_csv(split_path, data)
        else:
            split = split_dataset(data, cfg.split, seed=cfg.seed)
    data, split = distributed.broadcast_object(ctx, (data, split))
    run.data, run.split = data, split
    run.labels, run.task = list(data.labels), data.task
    name = cfg.name or run.run_dir.name
    run.manifest = build.make_manifest(cfg, run.labels, run.task, name)
    run.cache = DecodedCache(run.cache_dir, run.manifest)
    if ctx.is_main:
        write_text_atomic(
            run.run_dir / "data_report.json", json.dumps(data.report.to_dict(), indent=2) + "\n"
        )
        run.events.emit(DataRead(report=data.report.to_dict()))
        for line in data.report.summary_lines()[len(run.labels) + 1 :]:
            run.events.emit(WarningEvent(message=line.strip()))
    warm_run_cache(run)
    if ctx.is_main:
        write_split_csv(run.run_dir / "split.csv", run.split)
        run.events.emit(SplitMade(summary=run.split.summary(), level=run.split.level))


def warm_run_cache(run: Run) -> None:
    """Decode every image into the cache; drop (and report) the ones that cannot be decoded."""
    ctx, split = run.ctx, run.split
    total = len(split.samples)
    last = [0.0]

    def progress(done: int, n: int, _msg: str) -> None:
        if ctx.is_main and (time.monotonic() - last[0] > 0.5 or done == n):
            last[0] = time.monotonic()
            run.events.emit(CacheProgress(done=done * ctx.world_size, total=total))

    failed = warm_cache(
        run.cache,
        split.samples,
        workers=run.config.workers,
        rank=ctx.rank,
        world_size=ctx.world_size,
        progress=progress,
        cancel=run.cancel,
    )
    failed = sorted({f for part in distributed.all_gather_object(ctx, failed) for f in part})
    distributed.barrier(ctx)
    if not failed:
        return
    bad = {i for i, _ in failed}
    rep = run.data.report
    for i, reason in failed:
        rep.add_unreadable(split.samples[i].path, reason)
    if ctx.is_main:
        first = split.samples[failed[0][0]]
        run.events.emit(
            WarningEvent(
                message=f"{len(failed)} image(s) could not be decoded and were skipped, "
                f"e.g. {Path(first.path).name}: {failed[0][1]}",
            )
        )
    keep = [i for i in range(total) if i not in bad]
    run.split = Split(
        [split.samples[i] for i in keep],
        [split.assignment[i] for i in keep],
        [split.patients[i] for i in keep],
        split.level,
        split.source,
        split.labels,
    )
    if not run.split.indices("train"):
        raise DataSourceError("No training image could be decoded; check the files listed as unreadable.")


def make_loader(run: Run, name: str, train: bool) -> tuple[XrayDataset, DataLoader, ResumableSampler]:
    cfg, ctx = run.config, run.ctx
    transform = build_train_transform(cfg.augment) if train else None
    ds = XrayDataset(run.split.subset(name), run.labels, run.task, run.cache, transform, cfg.seed)
    weights = None
    if train and cfg.imbalance == "sampler" and len(ds):
        weights = class_balancing_weights(ds.targets, len(run.labels), run.task)
    sampler = ResumableSampler(
        ds, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=train, seed=cfg.seed, weights=weights
    )
    g = torch.Generator()
    g.manual_seed(cfg.seed)
    loader = DataLoader(
        ds,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.workers,
        pin_memory=run.device.type == "cuda",
        generator=g,
    )
    return ds, loader, sampler
