"""LayerCAM (Jiang et al. 2021): positive gradients weight each position, so earlier layers work too.

``sum_c relu(G_c) * A_c``: unlike Grad-CAM's one weight per channel, each position keeps its own
weight, which is what makes the finer maps of earlier blocks usable (Grad-CAM on an early block is
mostly noise). Several layers (``layer="layer2,layer3"``) are fused as in the paper's multi-layer
variant (each map normalised, then averaged or multiplied; see :mod:`ml.explain.cam`).
"""

from __future__ import annotations

import torch

from ml.explain.cam import CamExplainer


class LayerCam(CamExplainer):
    method = "layercam"
    label = "LayerCAM"

    @staticmethod
    def combine(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return (grads.clamp(min=0) * acts).sum(0)


__all__ = ["LayerCam"]
