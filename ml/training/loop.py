"""One epoch of training and one pass of evaluation (torchvision references style).

The functions receive everything they need (model, criterion, optimizer, loader, device, ...) and
build nothing. They report through plain callbacks and stop early when ``should_stop()`` says so
(checked once per batch), leaving the caller to save a resumable checkpoint.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ml.errors import CxrError

BatchCallback = Callable[[int, int, float, int], None]  # (batch done, batches, running loss, images)


class TrainingDivergedError(CxrError):
    """The loss became NaN or infinite."""


class MaskedBCEWithLogits(nn.Module):
    """Multi-label BCE that ignores targets of -1 (unknown labels); optional ``pos_weight`` and smoothing."""

    def __init__(self, pos_weight: torch.Tensor | None = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("pos_weight", pos_weight if pos_weight is not None else None)
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        known = targets >= 0
        t = targets.clamp(min=0).to(logits.dtype)
        if self.label_smoothing:
            t = t * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
        loss = nn.functional.binary_cross_entropy_with_logits(
            logits, t, pos_weight=self.pos_weight, reduction="none"
        )
        loss = loss * known
        return loss.sum() / known.sum().clamp(min=1)


def memory_format(device: torch.device) -> torch.memory_format:
    """The layout models and batches train in: channels-last on CPU (oneDNN) and CUDA. On the 2-core
    CPU a ResNet-18 training step at 224 px is 1.2-1.3x faster channels-last, ``cxr_resnet_small``'s
    1.5-1.7x (``build_scripts/bench_training.py``); MPS keeps the default layout."""
    return torch.channels_last if device.type in ("cpu", "cuda") else torch.contiguous_format


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch on ``device``, image batches (N, C, H, W) in :func:`memory_format`."""
    if x.dim() == 4:
        return x.to(device, non_blocking=True, memory_format=memory_format(device))
    return x.to(device, non_blocking=True)


def probabilities(logits: torch.Tensor, task: str) -> torch.Tensor:
    return torch.softmax(logits.float(), 1) if task == "multiclass" else torch.sigmoid(logits.float())


@dataclass
class EpochState:
    """Running sums of an epoch (saved in a mid-epoch checkpoint so a resume continues them)."""

    loss_sum: float = 0.0
    images: int = 0
    batches_done: int = 0
    seconds: float = 0.0

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / self.images if self.images else float("nan")


@dataclass
class Predictions:
    probs: torch.Tensor
    targets: torch.Tensor
    indices: torch.Tensor
    loss_sum: float = 0.0
    n: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def loss(self) -> float:
        return self.loss_sum / self.n if self.n else float("nan")


def train_one_epoch(
    model: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Any,
    device: torch.device,
    *,
    state: EpochState | None = None,
    batches: int | None = None,
    scheduler: Any = None,
    scaler: torch.amp.GradScaler | None = None,
    amp: bool = False,
    grad_clip: float = 0.0,
    on_batch: BatchCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[EpochState, bool]:
    """Train over ``loader`` (continuing ``state`` when resuming mid-epoch).

    ``scheduler`` (optional) is stepped after every optimiser step. Returns ``(state, stopped)``;
    ``stopped`` is True when ``should_stop()`` asked to stop after a batch.
    """
    state = state or EpochState()
    total = batches if batches is not None else state.batches_done + len(loader)
    model.train()
    t0 = time.perf_counter() - state.seconds
    for x, y, _ in loader:
        x = to_device(x, device)
        y = y.to(device, non_blocking=True)
        with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
            logits = model(x)
            loss = criterion(logits, y)
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise TrainingDivergedError(
                "The training loss became NaN or infinite; lower the learning rate or turn mixed precision off."
            )
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None and scaler.is_enabled():
            scaler.scale(loss).backward()
            if grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        state.loss_sum += loss_value * x.shape[0]
        state.images += int(x.shape[0])
        state.batches_done += 1
        state.seconds = time.perf_counter() - t0
        if on_batch is not None:
            on_batch(state.batches_done, total, state.mean_loss, state.images)
        if should_stop is not None and state.batches_done < total and should_stop():
            return state, True
    return state, False


@torch.no_grad()
def evaluate(
    model: nn.Module,
    criterion: nn.Module,
    loader: Any,
    device: torch.device,
    task: str,
    *,
    amp: bool = False,
    should_stop: Callable[[], bool] | None = None,
) -> Predictions:
    """Predicted probabilities, targets and sample indices over ``loader``, plus the summed loss."""
    model.eval()
    probs, targets, indices = [], [], []
    loss_sum, n = 0.0, 0
    for x, y, idx in loader:
        x = to_device(x, device)
        y = y.to(device, non_blocking=True)
        with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
            logits = model(x)
            loss = criterion(logits.float(), y)
        loss_sum += float(loss) * x.shape[0]
        n += int(x.shape[0])
        probs.append(probabilities(logits, task).cpu())
        targets.append(y.cpu())
        indices.append(torch.as_tensor(idx).cpu())
        if should_stop is not None and should_stop():
            break
    if not probs:
        return Predictions(torch.empty(0, 0), torch.empty(0), torch.empty(0, dtype=torch.long))
    return Predictions(torch.cat(probs), torch.cat(targets), torch.cat(indices), loss_sum, n)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, loader: Any, device: torch.device, max_batches: int = 50) -> int:
    """Recompute every BatchNorm's running statistics with the current weights ("precise BN").

    Running averages lag behind fast-moving weights (short CPU runs from scratch): evaluated with
    lagging statistics a well-trained model can look no better than chance. Forward passes over up
    to ``max_batches`` training batches, BatchNorm in training mode and everything else (dropout)
    in eval mode; returns the number of batches used (0 when the model has no BatchNorm).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or max_batches <= 0:
        return 0
    was_training = model.training
    momenta = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
        m.train()
    used = 0
    for x, *_ in loader:
        model(to_device(x, device))
        used += 1
        if used >= max_batches:
            break
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.train(was_training)
    return used
