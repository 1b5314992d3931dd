"""Thumbnails decoded in the background and cached by path.

A thumbnail is the image as the viewer would show it (``display.render`` of frame 0 with the
default VOI), reduced by block averaging then smoothed to ``size`` pixels. Decoding runs in a guarded
worker process of its own (:func:`app.browser.loader.shared_reader`), fed by a one-thread pool at low
priority, so it never competes with the image the user selected and a decoder crash stays there.
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Qt, QThreadPool, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap

from app.browser.loader import shared_reader
from app.workers import Job, make_pool
from ml.imaging.thumbnail import downscale, thumbnail_pixels

__all__ = ["ThumbnailLoader", "downscale", "make_thumbnail", "to_qimage"]


def to_qimage(pixels: np.ndarray) -> QImage:
    """An independent QImage (its own copy of the bytes) from an 8-bit grey or RGB array."""
    arr = np.ascontiguousarray(pixels)
    h, w = arr.shape[:2]
    if arr.ndim == 2:
        image = QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_Grayscale8)
    else:
        image = QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_RGB888)
    return image.copy()


def make_thumbnail(path: str | os.PathLike[str], size: int = 96) -> QImage:
    """Decode, render and shrink one image file (worker thread safe: QImage, not QPixmap). The
    decoding runs in the thumbnails' guarded worker process, so a decoder that crashes on a damaged
    file cannot take the application down."""
    pixels = shared_reader("thumbnails").run(thumbnail_pixels, os.fspath(path), size, name=Path(path).name)
    return to_qimage(pixels).scaled(
        size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
    )


class ThumbnailLoader(QObject):
    """Queue of thumbnail requests; emits ``ready(path, icon)`` as each one finishes."""

    ready = Signal(str, QIcon)
    failed = Signal(str, str)

    def __init__(self, size: int = 96, pool: QThreadPool | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.size = size
        self.pool = pool or make_pool(1, "thumbnails")
        self._cache: dict[str, QIcon] = {}
        self._pending: deque[str] = deque()
        self._queued: set[str] = set()
        self._running: dict[str, Job] = {}
        self._failed: dict[str, str] = {}
        self.max_in_flight = 1

    def icon(self, path: str) -> QIcon | None:
        return self._cache.get(path)

    def request(self, path: str, urgent: bool = False) -> None:
        """Ask for a thumbnail; ``ready`` fires (maybe immediately) once it exists."""
        if path in self._cache:
            self.ready.emit(path, self._cache[path])
            return
        if path in self._failed or path in self._running:
            return
        if path in self._queued:
            if urgent:
                self._pending.remove(path)
                self._pending.appendleft(path)
            return
        self._queued.add(path)
        if urgent:
            self._pending.appendleft(path)
        else:
            self._pending.append(path)
        self._pump()

    def pending(self) -> int:
        return len(self._pending) + len(self._running)

    def clear(self) -> None:
        """Forget queued requests and cancel the ones running (the cache is kept)."""
        self._pending.clear()
        self._queued.clear()
        for job in self._running.values():
            job.cancel()

    def _pump(self) -> None:
        while self._pending and len(self._running) < self.max_in_flight:
            path = self._pending.popleft()
            self._queued.discard(path)
            size = self.size
            job = Job(lambda _p, _c, path=path, size=size: make_thumbnail(path, size), "making a thumbnail", self.pool)
            job.signals.finished.connect(lambda img, path=path: self._done(path, img))
            job.signals.error.connect(lambda msg, path=path: self._error(path, msg))
            job.signals.done.connect(lambda path=path: self._finished(path))
            self._running[path] = job
            job.start(priority=-1)

    def _emit(self, signal: Signal, *args: object) -> None:
        """Emit unless the loader's C++ object is gone (a job can end after its browser closed)."""
        try:
            signal.emit(*args)  # type: ignore[attr-defined]
        except RuntimeError:  # "Signal source has been deleted"
            pass

    def _done(self, path: str, image: QImage) -> None:
        icon = QIcon(QPixmap.fromImage(image))
        self._cache[path] = icon
        self._emit(self.ready, path, icon)

    def _error(self, path: str, message: str) -> None:
        self._failed[path] = message
        self._emit(self.failed, path, message)

    def _finished(self, path: str) -> None:
        self._running.pop(path, None)
        self._pump()
