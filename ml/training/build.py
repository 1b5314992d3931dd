"""Turn a TrainConfig into objects: the manifest (input derivation), the model and its starting
weights, the optimiser, the learning-rate schedule, the loss. Only the runner calls these.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ml.errors import CxrError, ModelFileError
from ml.models import registry
from ml.models.manifest import InputDerivation, ModelManifest, default_normalisation
from ml.training.config import NORMALISATIONS, WEIGHTS_CHOICES, ConfigError, TrainConfig
from ml.training.loop import MaskedBCEWithLogits


class WeightsNotAvailableError(CxrError):
    """Pretrained weights were asked for but are not on this computer."""


def _normalisation(config: TrainConfig, arch_default: str, channels: int) -> Any:
    norm = config.normalisation
    if norm == "auto":
        return default_normalisation(arch_default, channels)
    if isinstance(norm, str):
        if norm not in NORMALISATIONS:
            raise ConfigError(f"Invalid training setting: unknown normalisation '{norm}'.")
        return default_normalisation(norm, channels)
    if isinstance(norm, dict) and "mean" in norm and "std" in norm:
        return {"mean": [float(x) for x in norm["mean"]], "std": [float(x) for x in norm["std"]]}
    raise ConfigError(
        "Invalid training setting: normalisation must be auto, imagenet, unit, xrv or {mean, std}."
    )


def base_model_file(config: TrainConfig) -> Path | None:
    """The model file to continue fine-tuning from, when ``weights`` names one."""
    if config.weights in (*WEIGHTS_CHOICES, ""):
        return None
    from ml.models.library import resolve_model

    return resolve_model(config.weights)


def make_manifest(config: TrainConfig, labels: list[str], task: str, name: str) -> ModelManifest:
    """The manifest the trained model will carry; its input fields drive the training inputs too."""
    base = base_model_file(config)
    if base is not None:
        from ml.models.bundle import read_manifest

        parent = read_manifest(base)
        spec = registry.get_spec(parent.architecture)
        channels = parent.channels
        normalisation = (
            parent.normalisation
            if config.normalisation == "auto"
            else _normalisation(config, spec.default_normalisation, channels)
        )
        derivation = parent.input_derivation
        size = config.image_size or parent.input_size
    else:
        spec = registry.get_spec(config.arch)
        channels = config.channels or spec.default_channels
        if config.weights == "imagenet":
            channels = config.channels or 3
        normalisation = _normalisation(
            config,
            "imagenet"
            if config.weights == "imagenet" and config.normalisation == "auto"
            else spec.default_normalisation,
            channels,
        )
        derivation = InputDerivation(voi=config.voi, resize=config.resize, equalize=config.equalize)  # type: ignore[arg-type]
        if config.weights == "xrv":
            # TorchXRayVision's released weights expect exactly xrv's input (its pixel scaling,
            # centre crop and resizer): the model is trained on what it will be given later.
            derivation = InputDerivation.xrv()
        size = config.image_size or spec.default_input_size
    if (base is None and config.weights != "xrv") or (
        base is not None and (config.resize != "squash" or config.voi != "default" or config.equalize != "none")
    ):
        derivation = replace(derivation, voi=config.voi, resize=config.resize, equalize=config.equalize)  # type: ignore[arg-type]
    manifest = ModelManifest(
        name=name, architecture=spec.name, labels=list(labels), task=task,  # type: ignore[arg-type]
        input_size=int(size), channels=int(channels), normalisation=normalisation, input_derivation=derivation,
        description=f"{'Trained from scratch' if config.weights in ('', 'none') else 'Fine-tuned'} in CXR Studio "
        f"on {Path(config.data.path).name or config.data.path}.",
    )  # fmt: skip
    return manifest.validate()


def _catalogue_weights(kind: str, arch: str) -> dict[str, torch.Tensor]:
    """Installed ImageNet (torchvision) or TorchXRayVision weights for ``arch``."""
    from ml.models import bundle, catalogue, library

    wanted = "torchvision" if kind == "imagenet" else "xrv"
    entries = [e for e in catalogue.load_catalogue() if e.kind == wanted and e.architecture == arch]
    if not entries:
        what = "ImageNet" if kind == "imagenet" else "TorchXRayVision"
        raise WeightsNotAvailableError(
            f"There are no {what} weights for architecture '{arch}'; choose weights none."
        )
    for entry in entries:
        found = library.find_model(entry.name)
        if found is not None and not found.error:
            return bundle.load_state_dict(found.path)
    raise WeightsNotAvailableError(
        f"The pretrained weights '{entries[0].name}' are not downloaded yet; download them from the model "
        f"library (cxr models download {entries[0].name}) or choose weights none."
    )


def build_model(config: TrainConfig, manifest: ModelManifest) -> tuple[nn.Module, str]:
    """The model to train and a description of where its starting weights came from."""
    n = len(manifest.labels)
    base = base_model_file(config)
    if base is not None:
        from ml.models.bundle import load_model

        parent_model, parent = load_model(base, "cpu")
        if list(parent.labels) != list(manifest.labels) or parent.task != manifest.task:
            registry.replace_head(parent_model, parent.architecture, n)
            return parent_model, f"model {parent.name} (new head for {n} labels)"
        return parent_model, f"model {parent.name}"
    if config.weights in ("imagenet", "xrv"):
        state = _catalogue_weights(config.weights, manifest.architecture)
        model = registry.build_model(manifest.architecture, n, manifest.channels, pretrained=state)
        return model, f"{config.weights} weights"
    if config.weights not in ("none", ""):
        raise ModelFileError(f"Unknown starting weights '{config.weights}'.")
    return registry.build_model(manifest.architecture, n, manifest.channels), "random initialisation"


def set_backbone_frozen(model: nn.Module, arch: str, frozen: bool) -> None:
    """Freeze (or unfreeze) everything but the classifier head."""
    head = set(map(id, registry.head_parameters(model, arch)))
    for p in model.parameters():
        p.requires_grad_(not frozen or id(p) in head)


def freeze_batchnorm(model: nn.Module, arch: str) -> None:
    """Keep frozen-backbone batch-norm statistics fixed (call after ``model.train()``)."""
    head = registry.get_spec(arch).head
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not name.startswith(head):
            m.eval()


def build_optimizer(config: TrainConfig, params: Any) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            nesterov=config.momentum > 0,
        )
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return kind(params, lr=config.lr, weight_decay=config.weight_decay, amsgrad=config.amsgrad)


class WarmupCosine:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total`` steps (a picklable lambda)."""

    def __init__(self, total: int, warmup: int) -> None:
        self.total, self.warmup = max(1, total), max(0, warmup)

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    config: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int, mode: str
) -> tuple[Any, str]:
    """``(scheduler, when)``: when is "step" (after every batch), "epoch" or "plateau" (with the metric)."""
    if config.scheduler == "cosine":
        total = steps_per_epoch * config.epochs
        warm = int(round(config.warmup_epochs * steps_per_epoch))
        return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(total, warm)), "step"
    if config.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, max(1, config.step_size), config.gamma), "epoch"
    if config.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=mode, factor=config.gamma, patience=config.plateau_patience
        ), "plateau"
    return None, "none"


def build_criterion(config: TrainConfig, task: str, targets: list[torch.Tensor], n_labels: int) -> nn.Module:
    """Cross-entropy (multi-class) or masked BCE (multi-label), with the chosen imbalance handling."""
    if task == "multiclass":
        weight = None
        if config.imbalance in ("class_weights", "pos_weight"):
            counts = torch.bincount(torch.stack(targets), minlength=n_labels).float().clamp(min=1)
            weight = counts.sum() / (n_labels * counts)
        return nn.CrossEntropyLoss(weight=weight, label_smoothing=config.label_smoothing)
    pos_weight = None
    if config.imbalance in ("pos_weight", "class_weights"):
        t = torch.stack(targets)
        pos = (t > 0.5).sum(0).float()
        neg = (t == 0).sum(0).float()
        pos_weight = (neg / pos.clamp(min=1)).clamp(max=100.0)
    return MaskedBCEWithLogits(pos_weight, config.label_smoothing)
