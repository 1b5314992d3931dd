"""Head-only fine-tuning: the frozen backbone runs once per image, its features are cached in
memory, and only the classifier head trains on them (a quick fine-tune on a CPU).

Augmentation does not apply in this mode (each image's features are computed once, un-augmented).
Checkpoints, cancel/resume, early stopping and the final model file work as in full training; the
model file holds the whole network (backbone unchanged, new head).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ml.models import registry
from ml.training import build
from ml.training.dataset import ResumableSampler, XrayDataset
from ml.training.events import CacheProgress
from ml.training.loop import to_device
from ml.training.rundata import Loaders, loader_for
from ml.training.rundir import RunEnv


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
            model(to_device(x, device))
            order.append(torch.as_tensor(idx))
    finally:
        handle.remove()
    if not captured:
        return torch.empty(0)
    feats, idx = torch.cat(captured), torch.cat(order)
    out = torch.empty_like(feats)
    out[idx] = feats
    return out


@dataclass(frozen=True)
class HeadOnly:
    """What head-only mode trains instead of the full model: the head, its optimiser, feature loaders."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loaders: Loaders


def prepare_head_only(
    env: RunEnv, full: nn.Module, arch: str, loaders: Loaders, labels: list[str], task: str
) -> HeadOnly:
    """Freeze the backbone of ``full``, compute every image's head input once, and return the head
    (a submodule of ``full``: training it trains ``full``'s head), its optimiser and feature loaders."""
    cfg = env.config
    head = full.get_submodule(registry.get_spec(arch).head)
    build.set_backbone_frozen(full, arch, True)
    parts: dict[str, tuple[FeatureDataset, DataLoader, ResumableSampler]] = {}
    for name, ds in (("train", loaders.train_ds), ("val", loaders.val_ds), ("test", loaders.test_ds)):
        assert isinstance(ds, XrayDataset)
        plain = DataLoader(
            XrayDataset(ds.samples, ds.labels, ds.task, ds.cache, None, ds.seed),
            batch_size=cfg.batch_size,
            num_workers=cfg.workers,
        )
        feats = extract_features(full, head, plain, env.device) if len(ds) else torch.empty(0)
        fds = FeatureDataset(feats, ds.targets)
        loader, sampler = loader_for(cfg, fds, fds.targets, labels, task, env.ctx, train=name == "train")
        parts[name] = (fds, loader, sampler)
        if env.is_main:
            env.events.emit(CacheProgress(done=len(ds), total=len(ds), features=name))
    (train_ds, train, sampler), (val_ds, val, _), (test_ds, test, _) = (
        parts["train"],
        parts["val"],
        parts["test"],
    )
    optimizer = build.build_optimizer(cfg, head.parameters())
    return HeadOnly(head, optimizer, Loaders(train_ds, train, sampler, val_ds, val, test_ds, test))
