"""Explanations (Captum): one module per method over a shared base; heatmaps on the source grid."""

from __future__ import annotations

from typing import Any

from ml.explain.base import Explainer, Heatmap, hook_count
from ml.explain.gradcam import GradCam
from ml.explain.occlusion import OcclusionExplainer

METHODS: dict[str, type[Explainer]] = {"gradcam": GradCam, "occlusion": OcclusionExplainer}


def make_explainer(method: str, model: Any, manifest: Any, device: Any = "cpu", **options: Any) -> Explainer:
    """An explainer by method name ("gradcam" or "occlusion"); use it as a context manager."""
    try:
        cls = METHODS[method]
    except KeyError:
        from ml.errors import CxrError

        raise CxrError(
            f"Unknown explanation method '{method}'; choose one of: {', '.join(METHODS)}."
        ) from None
    return cls(model, manifest, device, **options)


__all__ = ["METHODS", "Explainer", "GradCam", "Heatmap", "OcclusionExplainer", "hook_count", "make_explainer"]
