"""Grad-CAM with Captum's ``LayerGradCam`` on each architecture's last convolutional block.

The layer comes from the architecture registry (``ArchitectureSpec.target_layer``: ``final_relu``
for DenseNet-121 (the post-ReLU maps the classifier pools, as in pytorch-grad-cam), ``layer4`` for ResNets, ``features`` for EfficientNet/MobileNet, ``layer3`` for
the compact CNN) unless ``layer`` names another module. The map is ReLU'd (only evidence *for* the
target), upsampled bilinearly with ``LayerAttribution.interpolate`` to the network-input grid, and
then mapped to the source image grid by the base class. The target is the class score (logit).

Several layers (``layer="layer3,layer4"``: multi-layer Grad-CAM, fusing an earlier, finer block)
run one Captum ``LayerGradCam`` each; every map is upsampled to the input grid, divided by its own
maximum and the maps are fused (mean, or ``fuse="product"``: geometric mean), as in
:mod:`ml.explain.cam`. ``attribute_to_layer_input=True`` uses Captum's option of the same name
(the layer's input instead of its output: for ResNet's ``layer4`` that is ``layer3``'s output).

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

from ml.explain.base import Explainer
from ml.explain.cam import fuse_maps, layer_choice, resolve_layers
from ml.progress import CancelToken, ProgressCallback, check, report


class GradCam(Explainer):
    """Captum LayerGradCam on the registry's target layer (or ``layer``, a dotted module path)."""

    method = "gradcam"

    def __init__(
        self,
        model: nn.Module,
        manifest: Any,
        device: str | torch.device = "cpu",
        layer: str | list[str] | None = None,
        fuse: str = "mean",
        attribute_to_layer_input: bool = False,
    ) -> None:
        super().__init__(model, manifest, device)
        self.layers = layer_choice(layer, manifest, fuse)
        self.layer_path = ",".join(self.layers)
        self.fuse = fuse
        self.to_input = bool(attribute_to_layer_input)

    def _setup(self) -> None:
        assert self.model is not None
        modules = resolve_layers(self.model, self.layers, self.manifest.architecture)
        self._captum = [LayerGradCam(self.model, m) for m in modules]

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
        size = tuple(x.shape[-2:])
        maps = []
        for captum in self._captum:
            check(cancel)
            attr = (
                captum.attribute(
                    x, target=target, relu_attributions=True, attribute_to_layer_input=self.to_input
                )
                .detach()
                .float()
            )
            maps.append(attr)
        if len(maps) == 1:
            up = LayerAttribution.interpolate(maps[0], size, interpolate_mode="bilinear")
            raw = up[0].sum(0).cpu().numpy()
        else:
            raw = fuse_maps([a[0].sum(0) for a in maps], size, self.fuse)
        report(progress, 1, 1, "Grad-CAM")
        return raw


__all__ = ["GradCam"]
