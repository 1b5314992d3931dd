"""Explanations (Captum): one module per method over a shared base; heatmaps on the source grid.

Importing the package does not import torch (the classes load on first use). Methods:
``gradcam`` (Captum LayerGradCam, one or several layers), ``hirescam``, ``gradcampp``, ``layercam`` (the CAM family on :mod:`ml.explain.cam`), ``layerig`` (Captum
LayerIntegratedGradients from a black image) and ``occlusion`` (Captum Occlusion).
``method="default"`` takes the architecture's evidence-based default from the registry
(:func:`default_explanation`: method and layer chosen by ``build_scripts/bench_heatmaps.py``).
On request: :mod:`ml.explain.faithfulness` (deletion score), :mod:`ml.explain.sanity`
(model-parameter randomisation), :mod:`ml.explain.gating` and :mod:`ml.explain.contours`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ml.explain.base import Explainer

#: the method classes by name (see :func:`methods`: imported on first use, so that the torch-free
#: parts of the package, :mod:`ml.explain.gating`, import without torch)
_CLASSES = {
    "gradcam": ("ml.explain.gradcam", "GradCam"),
    "hirescam": ("ml.explain.hirescam", "HiResCam"),
    "gradcampp": ("ml.explain.gradcampp", "GradCamPlusPlus"),
    "layercam": ("ml.explain.layercam", "LayerCam"),
    "layerig": ("ml.explain.integrated", "LayerIntegratedGradientsExplainer"),
    "occlusion": ("ml.explain.occlusion", "OcclusionExplainer"),
}
_LAZY = {cls: mod for mod, cls in _CLASSES.values()} | {
    "Explainer": "ml.explain.base", "Heatmap": "ml.explain.base", "hook_count": "ml.explain.base",
}  # fmt: skip


def methods() -> dict[str, type[Explainer]]:
    """:data:`METHODS`: method name -> explainer class."""
    return {name: getattr(importlib.import_module(mod), cls) for name, (mod, cls) in _CLASSES.items()}


def __getattr__(name: str) -> Any:  # PEP 562: torch loads with the first explainer, not with the package
    if name == "METHODS":
        value: Any = methods()
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'ml.explain' has no attribute {name!r}")
    globals()[name] = value
    return value


#: what the GUI and the CLI call each method
METHOD_LABELS: dict[str, str] = {
    "gradcam": "Grad-CAM",
    "hirescam": "HiResCAM",
    "gradcampp": "Grad-CAM++",
    "layercam": "LayerCAM",
    "layerig": "Integrated gradients",
    "occlusion": "Occlusion",
}
#: options only occlusion takes; callers may pass them whatever the method ("default" resolves late)
OCCLUSION_OPTIONS = ("window", "stride", "baseline", "mode", "forward")
#: methods that take a ``layer`` option
LAYER_METHODS = ("gradcam", "hirescam", "gradcampp", "layercam", "layerig")


def default_explanation(architecture: str) -> tuple[str, str | None]:
    """(method, layer) the registry names for ``architecture`` (layer None: the method's own default)."""
    from ml.models.registry import get_spec

    spec = get_spec(architecture)
    method = getattr(spec, "explain_method", "") or "gradcam"
    layer = getattr(spec, "explain_layer", "") or None
    return method, layer


def occlusion_fill(architecture: str) -> str:
    """The occlusion patch fill the registry names for ``architecture`` ("": the explainer's default)."""
    from ml.models.registry import architectures, get_spec

    if architecture not in architectures():  # an unknown architecture has no benchmarked fill
        return ""
    return getattr(get_spec(architecture), "explain_fill", "") or ""


def make_explainer(method: str, model: Any, manifest: Any, device: Any = "cpu", **options: Any) -> Explainer:
    """An explainer by method name (see :data:`METHODS`, or "default"); use it as a context manager.

    ``layer`` (dotted module path(s), comma-separated) applies to the CAM methods; ``None`` or an
    empty string keeps the default (for ``"default"``: the registry's evidence-based layer).
    """
    if method == "default":
        method, layer = default_explanation(manifest.architecture)
        if layer and method in LAYER_METHODS and not options.get("layer"):
            options["layer"] = layer
    if method == "occlusion" and options.get("baseline") is None:
        options.pop("baseline", None)
        fill = occlusion_fill(manifest.architecture)
        if fill:
            options["baseline"] = fill
    try:
        cls = methods()[method]
    except KeyError:
        from ml.errors import CxrError

        raise CxrError(
            f"Unknown explanation method '{method}'; choose one of: default, {', '.join(_CLASSES)}."
        ) from None
    if method not in LAYER_METHODS and options.get("layer"):
        from ml.errors import CxrError

        raise CxrError(f"The {METHOD_LABELS[method]} method has no layer to choose; leave the layer empty.")
    options.pop("layer", None) if method not in LAYER_METHODS else None
    if method != "occlusion":  # occlusion's own settings (and its fast forward) mean nothing to the others
        for key in OCCLUSION_OPTIONS:
            options.pop(key, None)
    return cls(model, manifest, device, **options)


__all__ = [
    "LAYER_METHODS", "METHODS", "METHOD_LABELS", "Explainer", "GradCam", "GradCamPlusPlus", "Heatmap",
    "HiResCam", "LayerCam", "LayerIntegratedGradientsExplainer", "OcclusionExplainer", "default_explanation", "hook_count", "make_explainer", "occlusion_fill",
]  # fmt: skip
