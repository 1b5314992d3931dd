"""The data phase of a training run: source -> split -> decoded cache (:func:`prepare_data` -> :class:`RunData`),
then the data loaders (:func:`make_loaders` -> :class:`Loaders`). Both results are frozen.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from ml.errors import DataSourceError
from ml.fileio import write_text_atomic
from ml.models.manifest import ModelManifest
from ml.training import build, distributed
from ml.training.config import TrainConfig
from ml.training.dataset import (
    DecodedCache,
    ResumableSampler,
    XrayDataset,
    class_balancing_weights,
    warm_cache,
)
from ml.training.events import CacheProgress, DataRead, SplitMade, WarningEvent
from ml.training.rundir import RunEnv
from ml.training.sources import LabelledSet
from ml.training.splits import Split, read_split_csv, split_dataset, write_split_csv
from ml.training.transforms import build_train_transform


@dataclass(frozen=True)
class RunData:
    """The run's images, split, labels and the manifest its model will carry (input derivation)."""

    data: LabelledSet
    #: only images that decoded (the cache holds every one of them)
    split: Split
    labels: list[str]
    task: str
    manifest: ModelManifest
    cache: DecodedCache

    def patients(self, name: str) -> list[str]:
        """The patient of each image of split ``name`` (in the split's order)."""
        return [self.split.patients[i] for i in self.split.indices(name)]


@dataclass(frozen=True)
class Loaders:
    """Datasets and loaders of the three splits (features instead of images in head-only mode)."""

    train_ds: Dataset
    train: DataLoader
    train_sampler: ResumableSampler
    val_ds: Dataset
    val: DataLoader
    test_ds: Dataset
    test: DataLoader

    def steps_per_epoch(self, batch_size: int) -> int:
        n = len(self.train_sampler.epoch_indices())
        return n // batch_size + bool(n % batch_size)


def prepare_data(env: RunEnv, cache_dir: Path | None = None) -> RunData:
    """Load the data source, split it (or re-read split.csv on resume), warm the decoded cache."""
    from ml.training.presets import load_source

    cfg, ctx, events = env.config, env.ctx, env.events
    data = split = None
    if ctx.is_main:
        data = load_source(cfg.data, cancel=env.cancel)
        split_path = env.run_dir / "split.csv"
        if env.resume and split_path.is_file():
            split = read_split_csv(split_path, data)
        else:
            split = split_dataset(data, cfg.split, seed=cfg.seed)
    data, split = distributed.broadcast_object(ctx, (data, split))
    labels, task = list(data.labels), data.task
    manifest = build.make_manifest(cfg, labels, task, cfg.name or env.run_dir.name)
    cache = DecodedCache(cache_dir or env.run_dir / "cache", manifest)
    if ctx.is_main:
        write_text_atomic(
            env.run_dir / "data_report.json", json.dumps(data.report.to_dict(), indent=2) + "\n"
        )
        events.emit(DataRead(report=data.report.to_dict()))
        for line in data.report.summary_lines()[len(labels) + 1 :]:
            events.emit(WarningEvent(message=line.strip()))
    split = warm_run_cache(env, cache, data, split)
    if ctx.is_main:
        write_split_csv(env.run_dir / "split.csv", split)
        events.emit(SplitMade(summary=split.summary(), level=split.level))
    return RunData(data, split, labels, task, manifest, cache)


def warm_run_cache(env: RunEnv, cache: DecodedCache, data: LabelledSet, split: Split) -> Split:
    """Decode every image into the cache; the split without (and the report with) the ones that cannot be
    decoded."""
    ctx = env.ctx
    total = len(split.samples)
    last = [0.0]

    def progress(done: int, n: int, _msg: str) -> None:
        if ctx.is_main and (time.monotonic() - last[0] > 0.5 or done == n):
            last[0] = time.monotonic()
            env.events.emit(CacheProgress(done=done * ctx.world_size, total=total))

    failed = warm_cache(
        cache,
        split.samples,
        workers=env.config.workers,
        rank=ctx.rank,
        world_size=ctx.world_size,
        progress=progress,
        cancel=env.cancel,
    )
    failed = sorted({f for part in distributed.all_gather_object(ctx, failed) for f in part})
    distributed.barrier(ctx)
    if not failed:
        return split
    bad = {i for i, _ in failed}
    for i, reason in failed:
        data.report.add_unreadable(split.samples[i].path, reason)
    if ctx.is_main:
        first = split.samples[failed[0][0]]
        env.events.emit(
            WarningEvent(
                message=f"{len(failed)} image(s) could not be decoded and were skipped, "
                f"e.g. {Path(first.path).name}: {failed[0][1]}"
            )
        )
    keep = [i for i in range(total) if i not in bad]
    kept = Split(
        [split.samples[i] for i in keep],
        [split.assignment[i] for i in keep],
        [split.patients[i] for i in keep],
        split.level,
        split.source,
        split.labels,
    )
    if not kept.indices("train"):
        raise DataSourceError("No training image could be decoded; check the files listed as unreadable.")
    return kept


def loader_for(
    config: TrainConfig,
    ds: Dataset,
    targets: list[torch.Tensor],
    labels: list[str],
    task: str,
    ctx: distributed.DistContext,
    train: bool,
    pin_memory: bool = False,
    num_workers: int = 0,
) -> tuple[DataLoader, ResumableSampler]:
    """A seeded, resumable, torchrun-sharded loader over ``ds`` (class-balanced draws on request)."""
    weights = None
    if train and config.imbalance == "sampler" and len(targets):
        weights = class_balancing_weights(targets, len(labels), task)
    sampler = ResumableSampler(
        ds, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=train, seed=config.seed, weights=weights
    )
    g = torch.Generator()
    g.manual_seed(config.seed)
    loader = DataLoader(
        ds,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        generator=g,
    )
    return loader, sampler


def make_loaders(config: TrainConfig, data: RunData, ctx: distributed.DistContext) -> Loaders:
    """Train (augmented, shuffled), validation and test loaders over the decoded cache."""
    parts: dict[str, tuple[XrayDataset, DataLoader, ResumableSampler]] = {}
    for name in ("train", "val", "test"):
        train = name == "train"
        transform = build_train_transform(config.augment) if train else None
        ds = XrayDataset(data.split.subset(name), data.labels, data.task, data.cache, transform, config.seed)
        loader, sampler = loader_for(
            config, ds, ds.targets, data.labels, data.task, ctx, train,
            pin_memory=ctx.device.type == "cuda", num_workers=config.workers,
        )  # fmt: skip
        parts[name] = (ds, loader, sampler)
    (train_ds, train_loader, sampler), (val_ds, val_loader, _), (test_ds, test_loader, _) = (
        parts["train"], parts["val"], parts["test"],
    )  # fmt: skip
    return Loaders(train_ds, train_loader, sampler, val_ds, val_loader, test_ds, test_loader)
