"""The one batch-classification service: paths in, results out (GUI batch runs and `cxr predict`).

:func:`classify_paths` indexes what it is given with :func:`ml.imaging.index.build_index` (files,
folders of DICOM series, ZIP archives, DICOMDIRs), decodes the images one file at a time, batches
frames *across* files up to the predictor's batch size, reports progress, honours a
:class:`ml.progress.CancelToken` (checked per file and per batch) and returns one
:class:`FileResult` per file, in the order the paths list them. A file that cannot be read or
classified is a result with ``error`` set, never an exception; only cancellation raises
(:class:`ml.errors.CancelledError`). Not for diagnostic use.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml.errors import CancelledError, CxrError
from ml.imaging.image import XRayImage
from ml.progress import CancelToken, ProgressCallback, check, report

log = logging.getLogger(__name__)


@dataclass
class FileResult:
    """One file's outcome. ``source`` is what the user knows (a path or ``archive.zip:member``);
    ``path`` is readable on disk (for ZIP members: the extracted copy). ``predictions`` holds one
    :class:`ml.inference.predictor.Prediction` per classified frame (their ``path`` is ``source``)."""

    source: str
    path: str
    predictions: list[Any] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class BatchOutcome:
    """Every file's result in listing order, plus what was left out on purpose: ``skipped`` files
    in the given folders that are not images (README, CSV, an SR object...)."""

    results: list[FileResult] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    model_name: str = ""
    skipped: list[str] = field(default_factory=list)

    @property
    def predictions(self) -> list[Any]:
        return [p for r in self.results for p in r.predictions]

    @property
    def errors(self) -> list[tuple[str, str]]:
        return [(r.source, r.error) for r in self.results if r.error is not None]

    @property
    def n_failed(self) -> int:
        return sum(1 for r in self.results if r.error is not None)


# on_file(result, image): called once per file as soon as its predictions are complete (image is
# None for a failed file); `cxr predict` writes heatmaps from it.
FileCallback = Callable[[FileResult, XRayImage | None], None]


def classify_paths(
    predictor: Any,
    paths: Iterable[str | os.PathLike[str]],
    *,
    frame: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    on_file: FileCallback | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> BatchOutcome:
    """Classify every frame (or only ``frame``, from 0) of every image under ``paths``.

    ``predictor`` is a :class:`ml.inference.predictor.Predictor` (``predict``, ``batch_size``,
    ``labels``, ``manifest``). Files named explicitly that are not images are errors; non-image
    files found inside folders are counted in ``skipped``.
    """
    from ml.imaging.index import build_index, iter_files

    paths = [os.fspath(p) for p in paths]
    index = build_index(paths, progress=progress, cancel=cancel, cache_dir=cache_dir)
    order = {item.source: i for i, item in enumerate(iter_files(paths))}
    named = set(paths)
    outcome = BatchOutcome(labels=list(predictor.labels), model_name=str(predictor.manifest.name))
    todo: list[FileResult] = []
    for entry in index.instances():
        if entry.is_image:
            todo.append(FileResult(entry.source, entry.path))
        elif entry.source in named:
            todo.append(FileResult(entry.source, entry.path, error=_no_image(entry.source)))
        else:
            outcome.skipped.append(entry.source)
    for source, _kept in index.duplicates:  # a copy of an image already seen is classified too
        if os.path.isfile(source):
            todo.append(FileResult(source, source))
    for source, message in index.errors:
        if source in named or source not in index.not_images:
            todo.append(FileResult(source, source, error=message))
        else:
            outcome.skipped.append(source)
    todo.sort(key=lambda r: order.get(r.source, len(order)))
    _classify(predictor, todo, frame, progress, cancel, on_file)
    outcome.results = todo
    return outcome


def _no_image(source: str) -> str:
    return f"{Path(source).name} holds no image to classify."


def _classify(
    predictor: Any,
    todo: Sequence[FileResult],
    frame: int | None,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
    on_file: FileCallback | None,
) -> None:
    from ml.imaging.read import read_image

    total = len(todo)
    report(progress, 0, total, f"Classifying {total} file(s)")
    pending: list[tuple[FileResult, XRayImage, list[int]]] = []
    n_frames = 0
    for done, result in enumerate(todo, start=1):
        check(cancel)
        if result.error is None:
            image = _guarded(result, functools.partial(read_image, result.path))
            if image is not None:
                frames = _frames(result, image, frame)
                if frames:
                    pending.append((result, image, frames))
                    n_frames += len(frames)
        if result.error is not None and on_file is not None:
            on_file(result, None)
        if n_frames >= predictor.batch_size:
            _flush(predictor, pending, cancel, on_file)
            n_frames = 0
        report(progress, done, total, f"{done} of {total} file(s) classified")
    _flush(predictor, pending, cancel, on_file)


def _frames(result: FileResult, image: XRayImage, frame: int | None) -> list[int]:
    if frame is None:
        return list(range(image.n_frames))
    if not 0 <= frame < image.n_frames:
        result.error = f"{Path(result.source).name}: frame {frame + 1} does not exist ({image.n_frames} frame(s))."
        return []
    return [frame]


def _flush(predictor: Any, pending: list[tuple[FileResult, XRayImage, list[int]]],
           cancel: CancelToken | None, on_file: FileCallback | None) -> None:
    """Classify the pending frames in one call; if that fails, file by file so that only the
    file at fault gets the error."""
    if not pending:
        return
    items = [(image, f) for _, image, frames in pending for f in frames]
    try:
        predictions = predictor.predict(items, cancel=cancel)
    except CancelledError:
        raise
    except (CxrError, MemoryError, ValueError, RuntimeError):
        predictions = None
    if predictions is not None:
        it = iter(predictions)
        for result, _, frames in pending:
            result.predictions = [_named(next(it), result.source) for _ in frames]
    else:
        for result, image, frames in pending:
            preds = _guarded(result, functools.partial(predictor.predict, [(image, f) for f in frames], cancel=cancel))
            result.predictions = [_named(p, result.source) for p in preds or []]
    if on_file is not None:
        for result, image, _ in pending:
            _guarded(result, functools.partial(on_file, result, image if result.error is None else None))
    pending.clear()


def _named(prediction: Any, source: str) -> Any:
    if dataclasses.is_dataclass(prediction) and not isinstance(prediction, type) and getattr(prediction, "path", source) != source:
        return dataclasses.replace(prediction, path=source)
    return prediction


def _guarded(result: FileResult, fn: Callable[[], Any]) -> Any:
    """``fn()``, with any failure recorded as the file's error (cancellation still raises)."""
    name = Path(result.source).name
    try:
        return fn()
    except CancelledError:
        raise
    except CxrError as exc:
        result.error = str(exc)
    except MemoryError:
        result.error = f"{name}: not enough memory to classify it."
    except Exception as exc:  # noqa: BLE001 - one bad file never ends the batch
        log.error("unexpected error while classifying a file (%s)", type(exc).__name__)
        result.error = f"{name}: something went wrong while classifying it ({type(exc).__name__})."
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":
            raise
        result.error = f"{name} is damaged and cannot be decoded."
    return None
