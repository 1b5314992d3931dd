"""Sanity check for a heatmap method (Adebayo et al. 2018, model-parameter randomisation).

A map that explains the *model* must change when the model's weights are replaced by random ones;
a method whose map stays the same (an edge detector in disguise) explains the image, not the
model. :func:`randomisation_check` explains the same images with the trained model and with a
copy whose every parameter is re-initialised (each module's own ``reset_parameters``, seeded), and
compares the two maps by Spearman rank correlation. A method passes when the mean correlation is
below :data:`SPEARMAN_BOUND`; one that fails is flagged ("fails the randomisation check") and is
never chosen as a default (:func:`passes`). The maps are compared on a grid of at most 64 x 64
(block means), which keeps the ranks meaningful and the check cheap.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ml.errors import CxrError
from ml.imaging.image import XRayImage

#: a method passes when the mean Spearman correlation trained vs randomised is below this
SPEARMAN_BOUND = 0.5


@dataclass(frozen=True)
class SanityResult:
    method: str
    layer: str | None
    spearman: float  # mean over the images
    worst: float  # highest correlation over the images
    bound: float
    n_images: int

    @property
    def passed(self) -> bool:
        return self.spearman < self.bound

    def text(self) -> str:
        verdict = "passes" if self.passed else "FAILS"
        return (
            f"{self.method} {verdict} the randomisation check: rank correlation with the map of a "
            f"randomised model {self.spearman:.2f} (bound {self.bound:.2f}, {self.n_images} images)."
        )


def randomised_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A deep copy of ``model`` with every parameter (and BatchNorm statistic) re-initialised."""
    out = copy.deepcopy(model)
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        for m in out.modules():
            reset = getattr(m, "reset_parameters", None)
            if callable(reset):
                reset()
    finally:
        torch.random.set_rng_state(gen_state)
    return out.eval()


def _block_mean(values: np.ndarray, size: int = 64) -> np.ndarray:
    rows, cols = values.shape
    fy, fx = max(1, rows // size), max(1, cols // size)
    r, c = rows // fy * fy, cols // fx * fx
    return values[:r, :c].reshape(r // fy, fy, c // fx, fx).mean(axis=(1, 3))


def _ranks(a: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank), as scipy.stats.rankdata."""
    _, inverse, counts = np.unique(a, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps of the same shape (0 when either is constant)."""
    ra, rb = _ranks(np.ravel(a)), _ranks(np.ravel(b))
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def randomisation_check(
    method: str | type,
    model: nn.Module,
    manifest: Any,
    images: list[XRayImage],
    target: int | str | None = None,
    bound: float = SPEARMAN_BOUND,
    seed: int = 0,
    device: Any = "cpu",
    **options: Any,
) -> SanityResult:
    """Compare ``method``'s maps (a name, or an Explainer class) for the trained and a randomised model."""
    from ml.explain import make_explainer  # late: ml.explain imports this module's package

    def explainer(net: nn.Module) -> Any:
        if isinstance(method, str):
            return make_explainer(method, net, manifest, device, **options)
        return method(net, manifest, device, **options)

    if not images:
        raise CxrError("The randomisation check needs at least one image.")
    random_model = randomised_copy(model, seed)
    values: list[float] = []
    with explainer(model) as trained:
        maps = [trained.explain(im, target=target) for im in images]
        layer = getattr(trained, "layer_path", None)
        name = trained.method
    with explainer(random_model) as randomised:
        for im, h in zip(images, maps, strict=True):
            r = randomised.explain(im, target=h.target_label if target is None else target)
            values.append(spearman(_block_mean(h.values), _block_mean(r.values)))
    return SanityResult(
        method=name, layer=layer, spearman=float(np.mean(values)), worst=float(np.max(values)),
        bound=float(bound), n_images=len(images),
    )  # fmt: skip


def passes(result: SanityResult | None) -> bool:
    """May this method be a default? (No result yet counts as not proven.)"""
    return result is not None and result.passed


__all__ = ["SPEARMAN_BOUND", "SanityResult", "passes", "randomisation_check", "randomised_copy", "spearman"]
