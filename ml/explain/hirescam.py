"""HiResCAM (Draelos & Carin 2020): the element-wise product of gradients and activations.

Grad-CAM averages each channel's gradient over the map before weighting the channel, which can
highlight places the class score does not depend on; HiResCAM keeps the gradient where it is,
``sum_c G_c * A_c``, so for a model whose last convolution feeds global average pooling and one
linear layer its map is exactly each position's contribution to the class score (faithful).
"""

from __future__ import annotations

import torch

from ml.explain.cam import CamExplainer


class HiResCam(CamExplainer):
    method = "hirescam"
    label = "HiResCAM"

    @staticmethod
    def combine(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return (grads * acts).sum(0)


__all__ = ["HiResCam"]
