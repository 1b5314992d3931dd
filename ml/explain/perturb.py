"""What a perturbation puts in and what it measures: shared by occlusion (:mod:`ml.explain.occlusion`)
and the deletion score (:mod:`ml.explain.faithfulness`).

* :func:`patch_fill`: the fill of an occluded or deleted region (``"black"``, ``"mean"``,
  ``"blur"`` or a number, in the model's normalised input space); which fill works depends on the
  network, so the registry names one per architecture (``explain_fill``; README "Heatmaps");
* :func:`default_window`: occlusion's window, 32 px at 224 px, scaled with the input size;
* :func:`log_probs`: the multi-class score, log-softmax in float64 (float32 rounds a confident
  model's log-probability to exactly 0, which made occlusion maps flat).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ml.errors import CxrError
from ml.inference.preprocess import normalise

#: what the patch is filled with (or a number: a constant in normalised space)
BASELINES = ("mean", "blur", "black")


def patch_fill(
    x: torch.Tensor, manifest: Any, fill: float | str, window: int, content: tuple[int, int, int, int] | None = None
) -> torch.Tensor:
    """What replaces occluded (or deleted) pixels of the normalised input ``x`` (1, C, H, W),
    broadcastable to it: ``"black"``, ``"mean"`` (over ``content`` = (row, col, rows, cols), else
    the whole input), ``"blur"`` (Gaussian, sigma half the ``window``) or a number. Occlusion and
    the deletion score (:mod:`ml.explain.faithfulness`) both fill through here."""
    channels = x.shape[1]
    if fill == "black":
        zero = np.zeros((channels, 1, 1), np.float32)
        return torch.from_numpy(normalise(zero, manifest)).to(x).view(1, channels, 1, 1)
    if fill == "mean":
        r0, c0, h, w = content if content is not None else (0, 0, x.shape[2], x.shape[3])
        return x[:, :, r0 : r0 + h, c0 : c0 + w].mean(dim=(2, 3), keepdim=True)
    if fill == "blur":
        from torchvision.transforms.functional import gaussian_blur

        sigma = max(0.5, window / 2.0)
        kernel = min(2 * int(math.ceil(3 * sigma)) + 1, 2 * (min(x.shape[2:]) // 2) - 1)
        return gaussian_blur(x, [kernel, kernel], [sigma, sigma])
    if isinstance(fill, (int, float)):
        return torch.full((1, channels, 1, 1), float(fill), dtype=x.dtype, device=x.device)
    raise CxrError(f"Unknown fill '{fill}': use {', '.join(BASELINES)} or a number.")


def default_window(input_size: int) -> int:
    """The default occlusion window: 32 px at a 224 px input, scaled with the input size."""
    return max(1, round(32 * int(input_size) / 224))


def log_probs(logits: torch.Tensor) -> torch.Tensor:
    """Log-softmax in float64 as ``-log1p(sum_{j != k} exp(z_j - z_k))`` for every class ``k``:
    exact for a confident model, where float32 ``log_softmax`` returns 0 (see the module docstring)."""
    z = logits.double()
    diff = z[:, None, :] - z[:, :, None]  # [n, k, j] = z_j - z_k
    eye = torch.eye(z.shape[1], dtype=torch.bool, device=z.device)
    return -torch.log1p(torch.exp(diff.masked_fill(eye, -math.inf)).sum(dim=2))


__all__ = ["BASELINES", "default_window", "log_probs", "patch_fill"]
