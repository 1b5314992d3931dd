"""Grad-CAM with Captum's ``LayerGradCam`` on each architecture's last convolutional block.

The layer comes from the architecture registry (``ArchitectureSpec.target_layer``: ``final_relu``
for DenseNet-121 (the post-ReLU maps the classifier pools, as in pytorch-grad-cam), ``layer4`` for ResNets, ``features`` for EfficientNet/MobileNet, ``layer3`` for
the compact CNN) unless ``layer`` names another module. The map is ReLU'd (only evidence *for* the
target), upsampled bilinearly with ``LayerAttribution.interpolate`` to the network-input grid, and
then mapped to the source image grid by the base class. The target is the class score (logit).

Because the explainer's model copy has frozen parameters, Captum's layer hook is where gradients
start: the backbone runs like inference and the backward pass only covers the layers after the
target layer, so Grad-CAM costs little more than one forward pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from captum.attr import LayerAttribution, LayerGradCam
from torch import nn

from ml.errors import ModelFileError
from ml.explain.base import Explainer
from ml.models.registry import get_spec
from ml.progress import CancelToken, ProgressCallback, check, report


class GradCam(Explainer):
    """Captum LayerGradCam on the registry's target layer (or ``layer``, a dotted module path)."""

    method = "gradcam"

    def __init__(
        self, model: nn.Module, manifest: Any, device: str | torch.device = "cpu", layer: str | None = None
    ) -> None:
        super().__init__(model, manifest, device)
        self.layer_path = layer or get_spec(manifest.architecture).target_layer

    def _setup(self) -> None:
        assert self.model is not None
        try:
            layer = self.model.get_submodule(self.layer_path)
        except AttributeError:
            raise ModelFileError(
                f"The model has no layer '{self.layer_path}' for Grad-CAM (architecture "
                f"'{self.manifest.architecture}')."
            ) from None
        self._captum = LayerGradCam(self.model, layer)

    def _attribute(
        self,
        x: torch.Tensor,
        target: int,
        emit: Callable[[np.ndarray, float], None] | None,
        progress: ProgressCallback | None,
        cancel: CancelToken | None,
    ) -> np.ndarray:
        check(cancel)
        report(progress, 0, 1, "Grad-CAM")
        attr = self._captum.attribute(x, target=target, relu_attributions=True).detach().float()
        up = LayerAttribution.interpolate(attr, tuple(x.shape[-2:]), interpolate_mode="bilinear")
        raw = up[0].sum(0).cpu().numpy()
        report(progress, 1, 1, "Grad-CAM")
        return raw


__all__ = ["GradCam"]
