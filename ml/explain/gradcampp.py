"""Grad-CAM++ (Chattopadhyay et al. 2018): pixel-weighted gradients, better for several or small regions.

Channel weights ``w_c = sum_ij alpha_cij * relu(G_cij)`` with
``alpha = G^2 / (2 G^2 + sum_ij(A_c) G^3)`` (the closed form for an exponential score, as in the
paper and pytorch-grad-cam); the map is ``sum_c w_c A_c``.
"""

from __future__ import annotations

import torch

from ml.explain.cam import CamExplainer


class GradCamPlusPlus(CamExplainer):
    method = "gradcampp"
    label = "Grad-CAM++"

    @staticmethod
    def combine(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        g2 = grads.pow(2)
        g3 = grads.pow(3)
        denom = 2 * g2 + acts.sum(dim=(1, 2), keepdim=True) * g3
        alpha = g2 / torch.where(denom != 0, denom, torch.ones_like(denom))
        weights = (alpha * grads.clamp(min=0)).sum(dim=(1, 2))
        return (weights[:, None, None] * acts).sum(0)


__all__ = ["GradCamPlusPlus"]
