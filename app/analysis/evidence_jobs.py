"""Background jobs of the heatmap's evidence (issue 14): faithfulness and the randomisation check.

Like :mod:`app.analysis.jobs`, every function returns ``run(progress, cancel)`` for the panel's job
runner and imports torch (through ``ml``) only when it runs; Qt-free and torch-free at import.

- :func:`explain` is the heatmap job: the map, the explainer's layer, the outlines of its top
  regions (:func:`ml.explain.contours.top_regions`, with areas in mm² from the pixel spacing) and,
  when the image has not been classified yet, the model's prediction on it (the gate needs it).
- :func:`faithfulness` is :func:`ml.explain.faithfulness.deletion_score` for a map shown.
- :func:`sanity` is :func:`ml.explain.sanity.randomisation_check` of a method on the image shown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.analysis.jobs import LoadedModel, Progress
from ml.imaging.image import XRayImage
from ml.lazy import ensure_torch
from ml.progress import CancelToken, check, report


@dataclass
class Explained:
    """What a heatmap job returns."""

    heatmap: Any  # ml.explain.Heatmap
    layer: str = ""  # the explainer's layer path(s), "" for methods without one
    regions: list[Any] = field(default_factory=list)  # ml.explain.contours.Region, strongest first
    spacing: tuple[float, float] | None = None  # (row mm, col mm) of the image, None when unknown
    prediction: Any = None  # the model's prediction on the image, when it was not classified yet


def regions_of(heatmap: Any, image: XRayImage) -> tuple[list[Any], tuple[float, float] | None]:
    from ml.explain.contours import spacing_of, top_regions

    spacing = spacing_of(image)
    return top_regions(heatmap, pixel_spacing=spacing), spacing


def explain(
    loaded: LoadedModel,
    image: XRayImage,
    frame: int,
    method: str,
    target: str | None,
    options: dict[str, Any],
    classify: bool = False,
) -> Callable[[Progress, CancelToken], Explained]:
    """A heatmap job. Partial heatmaps (occlusion) go to ``progress.partial`` when the runner's
    progress callback has one (:class:`app.workers.JobReporter` does)."""

    def run(progress: Progress, cancel: CancelToken) -> Explained:
        ensure_torch("captum.attr")  # captum's first import, serialised like torch's
        from ml.explain import make_explainer

        predictor = loaded.predictor
        prediction = None
        if classify:
            prediction = predictor.predict([(image, frame)], cancel=cancel)[0]
        on_partial = getattr(progress, "partial", None)
        fast = {}
        if getattr(predictor, "fast_forward", None) is not None:
            fast = {"forward": predictor.fast_forward}  # forward-only: the fast back-end (occlusion only)
        with make_explainer(method, predictor.model, loaded.manifest, predictor.device, **options, **fast) as ex:
            heatmap = ex.explain(image, frame, target, progress=progress, cancel=cancel, on_partial=on_partial)
            layer = str(getattr(ex, "layer_path", "") or "")
        check(cancel)
        regions, spacing = regions_of(heatmap, image)
        return Explained(heatmap, layer, regions, spacing, prediction)

    return run


def faithfulness(
    loaded: LoadedModel, image: XRayImage, frame: int, heatmap: Any
) -> Callable[[Progress, CancelToken], Any]:
    """The deletion score of ``heatmap`` (its top 10% removed vs a random 10% of the same shape)."""

    def run(progress: Progress, cancel: CancelToken) -> Any:
        from ml.explain.faithfulness import deletion_score

        report(progress, 0, 0, "Removing the map's top 10% from the image")
        check(cancel)
        predictor = loaded.predictor
        return deletion_score(predictor.model, loaded.manifest, image, heatmap, frame, device=predictor.device)

    return run


def sanity(
    loaded: LoadedModel, image: XRayImage, frame: int, method: str, layer: str, target: str | None
) -> Callable[[Progress, CancelToken], Any]:
    """The model-parameter randomisation check of ``method`` (at ``layer``) on the image shown."""

    def run(progress: Progress, cancel: CancelToken) -> Any:
        ensure_torch("captum.attr")
        from ml.explain import LAYER_METHODS
        from ml.explain.sanity import randomisation_check

        report(progress, 0, 0, "Explaining with the trained and a randomised copy of the model")
        check(cancel)
        predictor = loaded.predictor
        options = {"layer": layer} if layer and method in LAYER_METHODS else {}
        one = image if frame == 0 else _frame_of(image, frame)
        return randomisation_check(method, predictor.model, loaded.manifest, [one], target=target,
                                   device=predictor.device, **options)  # fmt: skip

    return run


def _frame_of(image: XRayImage, frame: int) -> XRayImage:
    """The frame ``frame`` of a multi-frame image as a one-frame image (the check explains frame 0)."""
    import dataclasses

    return dataclasses.replace(
        image, frames=image.frames[frame : frame + 1], frame_rescales=image.frame_rescales[frame : frame + 1],
        frame_windows=image.frame_windows[frame : frame + 1],
    )  # fmt: skip


__all__ = ["Explained", "explain", "faithfulness", "regions_of", "sanity"]
