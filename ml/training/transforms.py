"""Train-time augmentation (torchvision.transforms.v2) in the [0, 1] input space, before normalisation.

Geometric: rotation, scale, shear and translation in one ``RandomAffine``; photometric: brightness
and contrast. Flips exist but are off by default: they swap left and right anatomy (the heart
would appear on the right). ``strength`` scales every amplitude (Optuna tunes it).

Randomness is a pure function of ``(seed, epoch, image index)`` (:func:`augment`), so a resumed
run, any number of loader workers and any number of torchrun processes see identical augmentations.
"""

from __future__ import annotations

import hashlib

import torch
from torchvision.transforms import v2

from ml.training.config import AugmentConfig


class Clamp01(torch.nn.Module):
    """Keep augmented values in [0, 1] (brightness can push them out)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(0.0, 1.0)


def build_train_transform(aug: AugmentConfig | None) -> v2.Compose | None:
    """The augmentation pipeline for CxHxW float tensors in [0, 1]; ``None`` when nothing is enabled."""
    if aug is None or not aug.enabled or aug.strength <= 0:
        return None
    k = aug.strength
    ops: list[torch.nn.Module] = []
    rot, tr, sc, sh = aug.rotation * k, min(aug.translate * k, 0.5), min(aug.scale * k, 0.9), aug.shear * k
    if rot or tr or sc or sh:
        ops.append(
            v2.RandomAffine(
                degrees=rot,
                translate=(tr, tr) if tr else None,
                scale=(1.0 - sc, 1.0 + sc) if sc else None,
                shear=(-sh, sh, -sh, sh) if sh else None,
                interpolation=v2.InterpolationMode.BILINEAR,
                fill=0.0,
            )
        )
    b, c = min(aug.brightness * k, 0.9), min(aug.contrast * k, 0.9)
    if b or c:
        ops.append(v2.ColorJitter(brightness=b or None, contrast=c or None))
    if aug.hflip:
        ops.append(v2.RandomHorizontalFlip())
    if aug.vflip:
        ops.append(v2.RandomVerticalFlip())
    if not ops:
        return None
    ops.append(Clamp01())
    return v2.Compose(ops)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    digest = hashlib.blake2b(f"{seed}:{epoch}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def augment(transform: v2.Compose | None, x: torch.Tensor, seed: int, epoch: int, index: int) -> torch.Tensor:
    """Apply ``transform`` with randomness fixed by (seed, epoch, index); the global RNG is untouched."""
    if transform is None:
        return x
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(sample_seed(seed, epoch, index))
        return transform(x)
