"""What the analysis panel runs in the background (thread pool jobs, see :mod:`app.analysis.runner`).

Every function here takes ``(progress, cancel)`` last, as :class:`app.workers.Job` calls it, and
imports torch (through ``ml``) only when it runs, so the window appears before torch has loaded.
A job that may be the process's first to need torch calls :func:`ml.lazy.ensure_torch` first: the
first import of torch/torchvision happens once, under one lock, never in two worker threads at once
(two pools run these jobs: the panel's and the library dialog's).
Qt-free and torch-free at import: the presenters import it, and their tests run without either.
The heatmap jobs are in :mod:`app.analysis.evidence_jobs`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml.errors import CxrError
from ml.imaging.image import XRayImage
from ml.inference.batch import BatchOutcome
from ml.lazy import ensure_torch
from ml.progress import CancelToken, ProgressCallback, check, report

log = logging.getLogger(__name__)

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


# ---------------------------------------------------------------------------- library


def list_models(
    _progress: ProgressCallback | None = None, _cancel: CancelToken | None = None
) -> list[ModelInfo]:
    """Installed models (manifests only); the default model shipped with the app is installed into
    the library the first time (from resources/models, no network) and comes marked ``default``."""
    from ml.models import library

    if library.bundled_default_model() is not None and library.default_model() is None:
        ensure_torch()  # installing the shipped model checks that it loads (imports torch)
    try:
        library.ensure_default_model()
    except (CxrError, OSError) as exc:  # the other models are still listed
        log.warning("the shipped default model could not be installed: %s", exc)
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
        ensure_torch()
        from ml.inference.predictor import load_predictor

        predictor = load_predictor(path, device=device)
        check(cancel)
        report(progress, 0, 0, f"Warming up on the {predictor.device_label}")
        predictor.warmup()
        return LoadedModel(Path(path), predictor.manifest, predictor, predictor.status_label)

    return run


# ---------------------------------------------------------------------------- inference


def predict_images(
    loaded: LoadedModel, items: list[tuple[XRayImage, int]]
) -> Callable[[Progress, CancelToken], list[Any]]:
    def run(progress: Progress, cancel: CancelToken) -> list[Any]:
        return loaded.predictor.predict(items, progress=progress, cancel=cancel)

    return run


def classify_files(loaded: LoadedModel, paths: Iterable[str]) -> Callable[[Progress, CancelToken], BatchOutcome]:
    """Classify every frame of every image under ``paths`` (files, folders, ZIPs, DICOMDIRs) with the
    one batch service, :func:`ml.inference.batch.classify_paths`: batched across files; a file that
    cannot be read is a result with its error, never skipped in silence."""
    paths = list(paths)

    def run(progress: Progress, cancel: CancelToken) -> BatchOutcome:
        ensure_torch()
        from ml.inference.batch import classify_paths

        outcome = classify_paths(loaded.predictor, paths, progress=progress, cancel=cancel)
        if not outcome.results:
            raise CxrError("No image was found there to classify.")
        return outcome

    return run


# ---------------------------------------------------------------------------- library changes


def import_file(path: str, **fields: Any) -> Callable[[Progress, CancelToken], ModelInfo]:
    def run(progress: Progress, _cancel: CancelToken) -> ModelInfo:
        report(progress, 0, 0, f"Importing {Path(path).name}")
        ensure_torch()
        from ml.models import library

        installed = library.import_model(path, **fields)
        return ModelInfo(installed.name, Path(installed.path), installed.manifest, installed.error)

    return run


def inspect_file(path: str) -> Callable[[Progress, CancelToken], tuple[bool, list[str]]]:
    """Is ``path`` one of our model files (a manifest inside)? Returns ``(ours, architectures)``."""

    def run(_progress: Progress, _cancel: CancelToken) -> tuple[bool, list[str]]:
        ensure_torch()  # the registry imports torchvision
        from ml.models import bundle, registry

        ours = False
        if Path(path).suffix.lower() == bundle.SUFFIX:
            _, metadata = bundle.read_header(path)
            ours = bundle.MANIFEST_KEY in metadata
        return ours, registry.architectures()

    return run


def download_model(name: str) -> Callable[[Progress, CancelToken], ModelInfo]:
    def run(progress: Progress, cancel: CancelToken) -> ModelInfo:
        ensure_torch()  # a downloaded file is converted and checked with torch
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
    "BatchOutcome",
    "LoadedModel",
    "ModelInfo",
    "classify_files",
    "download_model",
    "import_file",
    "inspect_file",
    "list_models",
    "load_catalogue",
    "load_model",
    "predict_images",
    "remove_model",
]
