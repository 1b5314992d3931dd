"""What the analysis panel runs in the background (thread pool jobs, see :mod:`app.analysis.runner`).

Every function here takes ``(progress, cancel)`` last, as :class:`app.workers.Job` calls it, and
imports torch (through ``ml``) only when it runs, so the window appears before torch has loaded.
Qt-free and torch-free at import: the presenters import it, and their tests run without either.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml.errors import CxrError
from ml.imaging.image import XRayImage
from ml.progress import CancelToken, ProgressCallback, check, report

Progress = Callable[[int, int, str], None]


@dataclass
class ModelInfo:
    """An installed model as the panel lists it (``manifest`` is None for a broken file)."""

    name: str
    path: Path
    manifest: Any = None
    error: str | None = None
    default: bool = False  # the library's default model (chosen when nothing else is)


@dataclass
class LoadedModel:
    """A model loaded, placed on its device and warmed up."""

    path: Path
    manifest: Any
    predictor: Any  # ml.inference.predictor.Predictor
    device_label: str

    @property
    def title(self) -> str:
        return f"{self.manifest.name} {self.manifest.version}"


@dataclass
class BatchResult:
    """Predictions of a batch run, and the files that could not be classified (path, why)."""

    predictions: list[Any] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    model_name: str = ""
    model_version: str = ""


# ---------------------------------------------------------------------------- library


def list_models(
    _progress: ProgressCallback | None = None, _cancel: CancelToken | None = None
) -> list[ModelInfo]:
    """Installed models (manifests only)."""
    from ml.models import library

    return [
        ModelInfo(m.name, Path(m.path), m.manifest, m.error, bool(getattr(m, "default", False)))
        for m in library.list_models()
    ]


def load_catalogue(
    _progress: ProgressCallback | None = None, _cancel: CancelToken | None = None
) -> list[Any]:
    from ml.models import catalogue

    return catalogue.load_catalogue()


def load_model(
    path: str | os.PathLike[str], device: str = "auto"
) -> Callable[[Progress, CancelToken], LoadedModel]:
    def run(progress: Progress, cancel: CancelToken) -> LoadedModel:
        report(progress, 0, 0, "Loading the model")
        from ml.inference.predictor import load_predictor

        predictor = load_predictor(path, device=device)
        check(cancel)
        report(progress, 0, 0, f"Warming up on the {predictor.device_label}")
        predictor.warmup()
        return LoadedModel(Path(path), predictor.manifest, predictor, predictor.device_label)

    return run


# ---------------------------------------------------------------------------- inference


def predict_images(
    loaded: LoadedModel, items: list[tuple[XRayImage, int]]
) -> Callable[[Progress, CancelToken], list[Any]]:
    def run(progress: Progress, cancel: CancelToken) -> list[Any]:
        return loaded.predictor.predict(items, progress=progress, cancel=cancel)

    return run


def predict_files(
    loaded: LoadedModel, paths: Iterable[str]
) -> Callable[[Progress, CancelToken], BatchResult]:
    """Classify every frame of every file in ``paths``; unreadable files are listed, not skipped."""
    paths = list(paths)

    def run(progress: Progress, cancel: CancelToken) -> BatchResult:
        from ml.imaging.read import read_image

        predictor = loaded.predictor
        m = loaded.manifest
        result = BatchResult(labels=list(predictor.labels), model_name=m.name, model_version=str(m.version))
        total = len(paths)
        report(progress, 0, total, f"Classifying {total} file(s) on the {predictor.device_label}")
        pending: list[tuple[XRayImage, int]] = []

        def flush() -> None:
            if pending:
                result.predictions.extend(predictor.predict(pending, cancel=cancel))
                pending.clear()

        for done, path in enumerate(paths, start=1):
            check(cancel)
            try:
                image = read_image(path)
            except CxrError as exc:
                result.errors.append((path, str(exc)))
            else:
                pending.extend((image, f) for f in range(image.n_frames))
                if len(pending) >= predictor.batch_size:
                    flush()
            report(progress, done, total, f"{done} of {total} file(s) classified")
        flush()
        return result

    return run


def index_and_predict(
    loaded: LoadedModel, paths: list[str]
) -> Callable[[Progress, CancelToken], BatchResult]:
    """A folder (or files, ZIPs) that is not open: index it, then classify every image in it."""

    def run(progress: Progress, cancel: CancelToken) -> BatchResult:
        from ml.imaging.index import build_index

        index = build_index(paths, progress=progress, cancel=cancel)
        images = [e.path for e in index.instances() if e.is_image]
        # every file is classified, also a copy of an image already seen (same SOP Instance UID)
        images += [source for source, _kept in index.duplicates if os.path.isfile(source)]
        if not images:
            raise CxrError("No image was found there to classify.")
        result = predict_files(loaded, images)(progress, cancel)
        result.errors[:0] = list(index.errors)
        return result

    return run


# ---------------------------------------------------------------------------- explanation


def explain(
    loaded: LoadedModel,
    image: XRayImage,
    frame: int,
    method: str,
    target: str | None,
    options: dict[str, Any],
) -> Callable[[Progress, CancelToken], Any]:
    """A heatmap job. Partial heatmaps (occlusion) go to ``progress.partial`` when the runner's
    progress callback has one (:class:`app.workers.JobReporter` does)."""

    def run(progress: Progress, cancel: CancelToken) -> Any:
        from ml.explain import make_explainer

        predictor = loaded.predictor
        on_partial = getattr(progress, "partial", None)
        with make_explainer(
            method, predictor.model, loaded.manifest, predictor.device, **options
        ) as explainer:
            return explainer.explain(
                image, frame, target, progress=progress, cancel=cancel, on_partial=on_partial
            )

    return run


# ---------------------------------------------------------------------------- library changes


def import_file(path: str, **fields: Any) -> Callable[[Progress, CancelToken], ModelInfo]:
    def run(progress: Progress, _cancel: CancelToken) -> ModelInfo:
        report(progress, 0, 0, f"Importing {Path(path).name}")
        from ml.models import library

        installed = library.import_model(path, **fields)
        return ModelInfo(installed.name, Path(installed.path), installed.manifest, installed.error)

    return run


def inspect_file(path: str) -> Callable[[Progress, CancelToken], tuple[bool, list[str]]]:
    """Is ``path`` one of our model files (a manifest inside)? Returns ``(ours, architectures)``."""

    def run(_progress: Progress, _cancel: CancelToken) -> tuple[bool, list[str]]:
        from ml.models import bundle, registry

        ours = False
        if Path(path).suffix.lower() == bundle.SUFFIX:
            _, metadata = bundle.read_header(path)
            ours = bundle.MANIFEST_KEY in metadata
        return ours, registry.architectures()

    return run


def download_model(name: str) -> Callable[[Progress, CancelToken], ModelInfo]:
    def run(progress: Progress, cancel: CancelToken) -> ModelInfo:
        from ml.models.download import install_from_catalogue

        installed = install_from_catalogue(name, progress, cancel)
        return ModelInfo(installed.name, Path(installed.path), installed.manifest, installed.error)

    return run


def remove_model(name: str) -> Callable[[Progress, CancelToken], str]:
    def run(_progress: Progress, _cancel: CancelToken) -> str:
        from ml.models import library

        library.remove_model(name)
        return name

    return run


__all__ = [
    "BatchResult",
    "LoadedModel",
    "ModelInfo",
    "download_model",
    "explain",
    "import_file",
    "index_and_predict",
    "inspect_file",
    "list_models",
    "load_catalogue",
    "load_model",
    "predict_files",
    "predict_images",
    "remove_model",
]
