"""Head-only fine-tuning: the frozen backbone runs once per image, its features are cached in
memory, and only the classifier head trains on them (a quick fine-tune on a CPU).

Augmentation does not apply in this mode (each image's features are computed once, un-augmented).
Checkpoints, cancel/resume, early stopping and the final model file work as in full training; the
model file holds the whole network (backbone unchanged, new head).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ml.models import registry
from ml.training import build
from ml.training.dataset import ResumableSampler, class_balancing_weights
from ml.training.events import CacheProgress


class FeatureDataset(Dataset):
    def __init__(self, features: torch.Tensor, targets: list[torch.Tensor]) -> None:
        self.features, self.targets = features, targets

    def set_epoch(self, epoch: int) -> None:  # same interface as XrayDataset
        pass

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        return self.features[i], self.targets[i], i


@torch.no_grad()
def extract_features(
    model: nn.Module, head: nn.Module, loader: DataLoader, device: torch.device
) -> torch.Tensor:
    """The head's input for every sample of ``loader`` (in sample order)."""
    captured: list[torch.Tensor] = []
    handle = head.register_forward_pre_hook(lambda _m, args: captured.append(args[0].detach().float().cpu()))
    order: list[torch.Tensor] = []
    try:
        model.eval()
        for x, _, idx in loader:
            model(x.to(device))
            order.append(torch.as_tensor(idx))
    finally:
        handle.remove()
    if not captured:
        return torch.empty(0)
    feats, idx = torch.cat(captured), torch.cat(order)
    out = torch.empty_like(feats)
    out[idx] = feats
    return out


def fit_head_only(run) -> None:  # noqa: ANN001 - ml.training.runner.Run (circular import otherwise)
    cfg, ctx = run.config, run.ctx
    arch = run.manifest.architecture
    full = run.model
    head = full.get_submodule(registry.get_spec(arch).head)
    build.set_backbone_frozen(full, arch, True)
    loaders = {}
    for name, ds in (("train", run.train_ds), ("val", run.val_ds), ("test", run.test_ds)):
        plain = DataLoader(
            ds.__class__(ds.samples, ds.labels, ds.task, ds.cache, None, ds.seed),
            batch_size=cfg.batch_size,
            num_workers=cfg.workers,
        )
        feats = extract_features(full, head, plain, run.device) if len(ds) else torch.empty(0)
        fds = FeatureDataset(feats, ds.targets)
        train = name == "train"
        weights = (
            class_balancing_weights(fds.targets, len(run.labels), run.task)
            if (train and cfg.imbalance == "sampler")
            else None
        )
        sampler = ResumableSampler(
            fds, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=train, seed=cfg.seed, weights=weights
        )
        g = torch.Generator()
        g.manual_seed(cfg.seed)
        loaders[name] = (
            fds,
            DataLoader(fds, batch_size=cfg.batch_size, sampler=sampler, generator=g),
            sampler,
        )
        if ctx.is_main:
            run.events.emit(CacheProgress(done=len(ds), total=len(ds), features=name))
    run.train_ds, run.train_loader, run.train_sampler = loaders["train"]
    run.val_ds, run.val_loader, _ = loaders["val"]
    run.test_ds, run.test_loader, _ = loaders["test"]
    run.export_model = full
    run.model = head
    run.optimizer = build.build_optimizer(cfg, head.parameters())
    run.scheduler, run.sched_when = build.build_scheduler(cfg, run.optimizer, run.steps_per_epoch, run.mode)
    run.fit()
