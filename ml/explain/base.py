"""The shared base of every explanation method: model handling, hooks, and the way back to the image.

An explainer is a context manager::

    with GradCam(model, manifest) as cam:
        heatmap = cam.explain(image, frame=0, target="Pneumonia")

On entry it takes a private deep copy of the model (the caller's model, which a Predictor may be
using at the same time, is never touched), puts it in eval mode, freezes its parameters (Captum
then only needs gradients from the hooked layer onwards, so Grad-CAM is about one forward pass
plus a short backward), and makes it safe for hooks: torchvision's DenseNet applies
``F.relu(..., inplace=True)`` to the Grad-CAM layer's output and its layers use
``nn.ReLU(inplace=True)``; :func:`ml.models.registry.prepare_for_explanation` swaps in an
out-of-place final ReLU and turns ``inplace`` off on every activation module, so no tensor a hook
captured is overwritten. On exit every hook registered while it was open (by Captum or by us) is
removed, even when an attribution was interrupted, and the Captum objects and the copy are dropped.

Subclasses implement :meth:`Explainer._setup` (build the Captum object) and
:meth:`Explainer._attribute` (an attribution map on the network-input grid). The base turns that
map into a :class:`Heatmap` on the *source* image's pixel grid through the
:class:`~ml.inference.preprocess.InputGeometry` of the input derivation (padding removed, resize
undone), so it lines up with the anatomy whatever the viewer's zoom, rotation or flip.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ml.errors import CxrError
from ml.imaging.image import XRayImage
from ml.inference.device import choose_device
from ml.inference.predictor import visible_indices
from ml.inference.preprocess import InputGeometry, prepare
from ml.models.registry import prepare_for_explanation
from ml.progress import CancelToken, ProgressCallback

_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


@dataclass
class Heatmap:
    """An explanation on the source image's pixel grid.

    ``values``: float32, the image's rows x cols, in [0, 1]: the positive evidence for
    ``target_label`` divided by its maximum (0 where the evidence is zero or negative).
    ``raw_min``/``raw_max``: the range of the attribution before that normalisation.
    ``complete`` is False for the partial maps an occlusion run emits while it works.
    """

    values: np.ndarray
    method: str
    target_label: str
    raw_min: float
    raw_max: float
    complete: bool = True
    fraction_done: float = 1.0

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.values.shape[0]), int(self.values.shape[1])

    def argmax(self) -> tuple[int, int]:
        """(row, col) of the strongest evidence."""
        r, c = np.unravel_index(int(np.argmax(self.values)), self.values.shape)
        return int(r), int(c)


PartialCallback = Callable[[Heatmap], None]


def normalise_map(raw: np.ndarray) -> np.ndarray:
    """Positive part divided by its maximum, float32 in [0, 1] (all zeros when nothing is positive)."""
    pos = np.clip(np.nan_to_num(np.asarray(raw, dtype=np.float32)), 0.0, None)
    top = float(pos.max()) if pos.size else 0.0
    return pos / np.float32(top) if top > 0 else np.zeros_like(pos)


def hook_count(model: nn.Module) -> int:
    """Number of forward/backward (pre-)hooks registered on any module of ``model``."""
    return sum(len(getattr(m, name, {}) or {}) for m in model.modules() for name in _HOOK_DICTS)


class Explainer:
    """Base class: a context manager that owns a model copy, Captum objects and hooks."""

    method = "base"

    def __init__(self, model: nn.Module, manifest: Any, device: str | torch.device = "cpu") -> None:
        self.source_model = model
        self.manifest = manifest
        self.device = device if isinstance(device, torch.device) else choose_device(device)
        self.model: nn.Module | None = None
        self._captum: Any = None
        self._hooks_before: dict[int, dict[str, set[int]]] = {}
        self._visible = visible_indices(manifest)

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Explainer:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        if self.model is not None:
            return
        model = copy.deepcopy(self.source_model)
        model = prepare_for_explanation(model).eval().to(self.device)
        for p in model.parameters():
            p.requires_grad_(False)
        if self.device.type == "cpu":
            model = model.to(memory_format=torch.channels_last)
        self._hooks_before = {
            id(m): {name: set((getattr(m, name, None) or {}).keys()) for name in _HOOK_DICTS}
            for m in model.modules()
        }
        self.model = model
        self._setup()

    def close(self) -> None:
        """Drop the Captum objects and remove every hook added since :meth:`open`."""
        self._captum = None
        if self.model is not None:
            for m in self.model.modules():
                before = self._hooks_before.get(id(m), {})
                for name in _HOOK_DICTS:
                    hooks = getattr(m, name, None)
                    if hooks:
                        for key in [k for k in hooks if k not in before.get(name, set())]:
                            del hooks[key]
        self.model = None
        self._hooks_before = {}

    def _require_open(self) -> nn.Module:
        if self.model is None:
            raise RuntimeError(f"{type(self).__name__} must be used inside a 'with' block (or after open()).")
        return self.model

    # ------------------------------------------------------------------ subclass API

    def _setup(self) -> None:
        """Create the Captum object(s) for ``self.model``."""

    def _attribute(
        self,
        x: torch.Tensor,
        target: int,
        emit: Callable[[np.ndarray, float], None] | None,
        progress: ProgressCallback | None,
        cancel: CancelToken | None,
    ) -> np.ndarray:
        """Attribution map (H x W float) on the network-input grid for output ``target``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ public API

    def target_index(self, target: int | str | None, x: torch.Tensor | None = None) -> int:
        """Output index for a label name, an index, or ``None`` (the highest-scoring visible label)."""
        labels = list(self.manifest.labels)
        if isinstance(target, str):
            if target not in labels:
                raise CxrError(f"The model has no label '{target}'; its labels are: {', '.join(labels)}.")
            return labels.index(target)
        if isinstance(target, (int, np.integer)):
            if not 0 <= int(target) < len(labels):
                raise CxrError(f"Label index {target} is out of range (the model has {len(labels)} outputs).")
            return int(target)
        model = self._require_open()
        assert x is not None
        with torch.no_grad():
            out = model(x)[0].float()
        visible = torch.tensor(self._visible, device=out.device)
        return int(visible[int(torch.argmax(out[visible]))])

    def input_tensor(self, image: XRayImage, frame: int = 0) -> tuple[torch.Tensor, InputGeometry]:
        array, geometry = prepare(image, frame, self.manifest)
        x = torch.from_numpy(array)[None].to(self.device)
        if self.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        return x, geometry

    def heatmap(
        self,
        raw: np.ndarray,
        geometry: InputGeometry,
        target: int,
        complete: bool = True,
        fraction: float = 1.0,
    ) -> Heatmap:
        """Input-grid attribution -> :class:`Heatmap` on the source grid."""
        raw = np.nan_to_num(np.asarray(raw, dtype=np.float32))
        source = geometry.to_source_grid(raw)
        return Heatmap(
            values=normalise_map(source), method=self.method, target_label=self.manifest.labels[target],
            raw_min=float(raw.min()), raw_max=float(raw.max()), complete=complete, fraction_done=fraction,
        )  # fmt: skip

    def explain(
        self,
        image: XRayImage,
        frame: int = 0,
        target: int | str | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        on_partial: PartialCallback | None = None,
    ) -> Heatmap:
        """Explain the model's output ``target`` (default: its top label) for one frame."""
        self._require_open()
        x, geometry = self.input_tensor(image, frame)
        index = self.target_index(target, x)
        emit = None
        if on_partial is not None:

            def emit(raw: np.ndarray, fraction: float) -> None:
                on_partial(self.heatmap(raw, geometry, index, complete=False, fraction=fraction))

        raw = self._attribute(x, index, emit, progress, cancel)
        return self.heatmap(raw, geometry, index)


__all__ = ["Explainer", "Heatmap", "PartialCallback", "hook_count", "normalise_map"]
