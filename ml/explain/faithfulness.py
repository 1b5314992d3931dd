"""Faithfulness of a heatmap, on request: does removing what it highlights change the model's mind?

Deletion score (Petsiuk et al.'s deletion metric at one point of the curve, as in ROAD/
pytorch-grad-cam's "remove and debias" family): the top ``fraction`` (default 10%) of the map's
pixels are replaced in the network input (by the architecture's occlusion fill), and the drop of
the target's probability is reported, next to the mean drop for the *same-shaped* region moved to random places (a circular
shift within the image content). A faithful map drops the probability much more than a random
region of the same size::

    score = deletion_score(model, manifest, image, heatmap)
    score.text()  # "Removing the top 10% of this map drops the probability of lesion by 0.62 ..."

The removed pixels get the same fill as occlusion on this architecture (``fill=None``: the
registry's benchmarked ``explain_fill``, else black: "no attenuation", the value a black pixel has
after the model's normalisation; ``"mean"``: the mean of the image content; ``"blur"``: a Gaussian
blur of the input, sigma half occlusion's default window), so the two perturbation measures ask
the model the same question. The map is brought onto the input grid through the input
derivation's geometry (padding is never deleted); probabilities are the model's raw softmax
(multi-class) or sigmoid (multi-label) outputs for the target label.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ml.errors import CxrError
from ml.explain.base import Heatmap
from ml.imaging.image import XRayImage
from ml.inference.device import choose_device
from ml.inference.preprocess import InputGeometry, prepare


@dataclass(frozen=True)
class DeletionScore:
    label: str
    fraction: float
    probability: float  # before deletion
    deleted: float  # after deleting the map's top region
    random_deleted: float | None  # mean after deleting same-size regions elsewhere

    @property
    def drop(self) -> float:
        return self.probability - self.deleted

    @property
    def random_drop(self) -> float | None:
        return None if self.random_deleted is None else self.probability - self.random_deleted

    def text(self) -> str:
        pct = f"{self.fraction * 100:.0f}%"
        out = (
            f"Removing the top {pct} of this map drops the probability of {self.label} by {self.drop:+.2f} "
            f"({self.probability:.2f} -> {self.deleted:.2f})"
        ).replace("by +", "by ")
        if self.random_drop is not None:
            rdrop = round(self.random_drop, 2) or 0.0  # never "-0.00"
            out += f"; removing a random {pct} region of the same shape: {rdrop:+.2f}"
        return out + "."


def map_on_input_grid(values: np.ndarray, geometry: InputGeometry) -> np.ndarray:
    """Source-grid map -> input grid (nearest source pixel); NaN on padding and outside the crop."""
    out = np.full((geometry.input_rows, geometry.input_cols), np.nan, np.float32)
    ys = np.arange(geometry.pad_top, geometry.pad_top + geometry.content_rows) + 0.5
    xs = np.arange(geometry.pad_left, geometry.pad_left + geometry.content_cols) + 0.5
    rows = np.clip(
        ((ys - geometry.pad_top) / geometry.scale_y + geometry.crop_top).astype(int),
        0,
        geometry.source_rows - 1,
    )
    cols = np.clip(
        ((xs - geometry.pad_left) / geometry.scale_x + geometry.crop_left).astype(int),
        0,
        geometry.source_cols - 1,
    )
    out[
        geometry.pad_top : geometry.pad_top + geometry.content_rows,
        geometry.pad_left : geometry.pad_left + geometry.content_cols,
    ] = np.asarray(values, np.float32)[np.ix_(rows, cols)]
    return out


def top_mask(grid: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean mask of the ``fraction`` highest finite values (ties broken by position)."""
    finite = np.isfinite(grid)
    k = max(1, int(round(fraction * int(finite.sum()))))
    flat = np.where(finite, grid, -np.inf).ravel()
    order = np.argsort(-flat, kind="stable")[:k]
    mask = np.zeros(flat.size, bool)
    mask[order] = True
    return mask.reshape(grid.shape)


def _probability(model: nn.Module, x: torch.Tensor, target: int, task: str) -> torch.Tensor:
    out = model(x).float()
    return torch.softmax(out, 1)[:, target] if task == "multiclass" else torch.sigmoid(out[:, target])


def _fill(x: torch.Tensor, manifest: Any, fill: str | None, content: tuple[int, int, int, int]) -> torch.Tensor:
    """What replaces the deleted pixels (broadcastable to ``x``): occlusion's fill at its default window."""
    from ml.explain.perturb import default_window, patch_fill

    if fill is None:
        from ml.explain import occlusion_fill

        fill = occlusion_fill(getattr(manifest, "architecture", "")) or "black"
    return patch_fill(x, manifest, fill, default_window(x.shape[-1]), content)


def deletion_score(
    model: nn.Module,
    manifest: Any,
    image: XRayImage,
    heatmap: Heatmap,
    frame: int = 0,
    fraction: float = 0.1,
    n_random: int = 4,
    seed: int = 0,
    device: str | torch.device = "cpu",
    fill: str | None = None,
) -> DeletionScore:
    """Probability of ``heatmap.target_label`` before / after deleting the map's top ``fraction``."""
    if not 0 < fraction < 1:
        raise CxrError("The share of the map to remove must be between 0 and 1 (for example 0.1).")
    if heatmap.shape != image.shape:
        raise CxrError("The heatmap does not belong to this image (its size differs).")
    labels = list(manifest.labels)
    if heatmap.target_label not in labels:
        raise CxrError(f"The model has no label '{heatmap.target_label}'.")
    target = labels.index(heatmap.target_label)
    dev = device if isinstance(device, torch.device) else choose_device(device)
    if model.training:
        model = copy.deepcopy(model).eval()
    array, geometry = prepare(image, frame, manifest)
    x = torch.from_numpy(array)[None].to(dev)
    grid = map_on_input_grid(heatmap.values, geometry)
    mask = top_mask(grid, fraction)
    masks = [mask]
    rng = np.random.default_rng(seed)
    r0, c0 = geometry.pad_top, geometry.pad_left
    h, w = geometry.content_rows, geometry.content_cols
    filler = _fill(x, manifest, fill, (r0, c0, h, w))
    for _ in range(max(0, int(n_random))):
        content = mask[r0 : r0 + h, c0 : c0 + w]
        moved = np.zeros_like(mask)
        moved[r0 : r0 + h, c0 : c0 + w] = np.roll(
            content,
            (int(rng.integers(h // 4, h - h // 4 + 1)), int(rng.integers(w // 4, w - w // 4 + 1))),
            (0, 1),
        )
        masks.append(moved)
    m = torch.from_numpy(np.stack(masks))[:, None].to(dev)
    batch = torch.where(m, filler, x.expand(len(masks), -1, -1, -1))
    task = getattr(manifest, "task", "multiclass")
    with torch.no_grad():
        p0 = float(_probability(model, x, target, task)[0])
        p = _probability(model, batch, target, task).cpu().numpy()
    return DeletionScore(
        label=heatmap.target_label, fraction=float(fraction), probability=p0, deleted=float(p[0]),
        random_deleted=float(p[1:].mean()) if len(p) > 1 else None,
    )  # fmt: skip


__all__ = ["DeletionScore", "deletion_score", "map_on_input_grid", "top_mask"]
