"""The shared machinery of the class-activation-map family that Captum does not have.

Captum has Grad-CAM (``LayerGradCam``, used by :mod:`ml.explain.gradcam`) but not HiResCAM,
Grad-CAM++ or LayerCAM. Those differ from Grad-CAM only in how activations ``A`` (C x h x w) and
the gradients ``G`` of the class score with respect to them are combined into one map, so, as in
pytorch-grad-cam, one base hooks the layer(s), runs one forward and one backward pass, and each
method overrides :meth:`CamExplainer.combine`.

Layers: ``layer`` is a dotted module path, or several separated by commas
(``"layer2,layer3"``): each layer's map is upsampled to the network-input grid, divided by its own
maximum, and the maps are fused (``fuse="mean"``, or ``"product"``: their geometric mean, which
keeps only what every layer agrees on). One pass serves every layer. The class score is the logit,
as in Captum's Grad-CAM.

Hooks: a forward hook per layer (registered on the explainer's private model copy, so the base's
``close`` removes it with the rest). The model's parameters are frozen, so the earliest hooked
output is made a leaf that requires gradients; later hooked outputs depend on it, so a single
``torch.autograd.grad`` gives every layer's gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ml.errors import CxrError, ModelFileError
from ml.explain.base import Explainer
from ml.models.registry import get_spec
from ml.progress import CancelToken, ProgressCallback, check, report

FUSIONS = ("mean", "product")


def parse_layers(layer: str | list[str] | tuple[str, ...] | None, default: str) -> list[str]:
    """``"a,b"`` / ``["a", "b"]`` / None (the default) -> a list of dotted module paths."""
    if layer is None or layer == "":
        layer = default
    names = layer.split(",") if isinstance(layer, str) else list(layer)
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise CxrError("No layer was named for the heatmap.")
    return names


def layer_choice(layer: str | list[str] | None, manifest: Any, fuse: str) -> list[str]:
    """The dotted layer paths to explain (the registry's target layer by default), once ``fuse``
    is known to be a fusion rule: what every CAM-style explainer checks on construction."""
    if fuse not in FUSIONS:
        raise CxrError(f"Unknown way to fuse layer maps '{fuse}': use one of {', '.join(FUSIONS)}.")
    return parse_layers(layer, get_spec(manifest.architecture).target_layer)


def resolve_layers(model: nn.Module, names: list[str], architecture: str) -> list[nn.Module]:
    out = []
    for name in names:
        try:
            out.append(model.get_submodule(name))
        except AttributeError:
            raise ModelFileError(
                f"The model has no layer '{name}' for a heatmap (architecture '{architecture}')."
            ) from None
    return out


def fuse_maps(maps: list[torch.Tensor], size: tuple[int, int], fuse: str) -> np.ndarray:
    """Per-layer maps (h x w, >= 0) -> one map on the input grid: each upsampled and max-normalised."""
    ups = []
    for m in maps:
        up = F.interpolate(m[None, None].float(), size=size, mode="bilinear", align_corners=False)[0, 0]
        up = up.clamp(min=0)
        top = float(up.max())
        ups.append(up / top if top > 0 else up)
    if len(ups) == 1:
        return ups[0].cpu().numpy()
    stack = torch.stack(ups)
    fused = stack.mean(0) if fuse == "mean" else stack.clamp(min=0).prod(0) ** (1.0 / len(ups))
    return fused.cpu().numpy()


class CamExplainer(Explainer):
    """Base of the CAM family on one or more layers; subclasses implement :meth:`combine`."""

    method = "cam"
    label = "CAM"

    def __init__(
        self,
        model: nn.Module,
        manifest: Any,
        device: str | torch.device = "cpu",
        layer: str | list[str] | None = None,
        fuse: str = "mean",
    ) -> None:
        super().__init__(model, manifest, device)
        self.layers = layer_choice(layer, manifest, fuse)
        self.layer_path = ",".join(self.layers)
        self.fuse = fuse
        self._modules: list[nn.Module] = []

    def _setup(self) -> None:
        assert self.model is not None
        self._modules = resolve_layers(self.model, self.layers, self.manifest.architecture)
        self._captum = True

    @staticmethod
    def combine(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        """Activations and gradients (C x h x w) -> a map (h x w); negative values are dropped later."""
        raise NotImplementedError

    def layer_maps(self, x: torch.Tensor, target: int) -> list[torch.Tensor]:
        """One forward + one backward; each hooked layer's map (h x w) at its own resolution."""
        model = self._require_open()
        acts: dict[int, torch.Tensor] = {}

        def hook(module: nn.Module, _inp: object, out: Any, key: int = 0) -> Any:
            if not isinstance(out, torch.Tensor):
                raise ModelFileError(
                    f"Layer '{self.layers[key]}' does not output one tensor; pick another layer."
                )
            if not out.requires_grad:
                out = out.detach().requires_grad_(True)
            acts[key] = out
            return out

        handles = [
            m.register_forward_hook(lambda mod, i, o, k=k: hook(mod, i, o, k))
            for k, m in enumerate(self._modules)
        ]
        try:
            with torch.enable_grad():
                score = model(x)[0, target]
                missing = [self.layers[k] for k in range(len(self._modules)) if k not in acts]
                if missing:
                    raise ModelFileError(
                        f"Layer(s) {', '.join(missing)} are not used by the model's forward pass."
                    )
                keys = sorted(acts)
                grads = torch.autograd.grad(score, [acts[k] for k in keys], allow_unused=True)
        finally:
            for h in handles:
                h.remove()
        out = []
        for k, g in zip(keys, grads, strict=True):
            a = acts[k].detach()[0].float()
            g = torch.zeros_like(a) if g is None else g.detach()[0].float()
            out.append(self.combine(a, g).clamp(min=0))
        return out

    def _attribute(
        self,
        x: torch.Tensor,
        target: int,
        emit: Callable[[np.ndarray, float], None] | None,
        progress: ProgressCallback | None,
        cancel: CancelToken | None,
    ) -> np.ndarray:
        check(cancel)
        report(progress, 0, 1, self.label)
        raw = fuse_maps(self.layer_maps(x, target), tuple(x.shape[-2:]), self.fuse)
        report(progress, 1, 1, self.label)
        return raw


__all__ = ["FUSIONS", "CamExplainer", "fuse_maps", "layer_choice", "parse_layers", "resolve_layers"]
