"""Thumbnails decoded in the background and cached by path.

A thumbnail is the image as the viewer would show it (``display.render`` of frame 0 with the
default VOI), reduced by block averaging then smoothed to ``size`` pixels. Decoding runs on a
one-thread pool at low priority so it never competes with the image the user selected.
"""

from __future__ import annotations

import os
from collections import deque

import numpy as np
import shiboken6
from PySide6.QtCore import QObject, Qt, QThreadPool, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap

from app.workers import Job, make_pool
from ml.imaging.display import render
from ml.imaging.read import read_image


def downscale(pixels: np.ndarray, size: int) -> np.ndarray:
    """Block-average an 8-bit HxW or HxWx3 image so its longer side is about 2*size (or less)."""
    h, w = pixels.shape[:2]
    k = max(1, max(h, w) // (2 * size))
    if k == 1:
        return np.ascontiguousarray(pixels)
    hh, ww = (h // k) * k, (w // k) * k
    cropped = pixels[:hh, :ww].astype(np.float32)
    if cropped.ndim == 2:
        small = cropped.reshape(hh // k, k, ww // k, k).mean(axis=(1, 3))
    else:
        small = cropped.reshape(hh // k, k, ww // k, k, cropped.shape[2]).mean(axis=(1, 3))
    return np.ascontiguousarray(np.clip(small + 0.5, 0, 255).astype(np.uint8))


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
    """Decode, render and shrink one image file (worker thread safe: QImage, not QPixmap)."""
    image = read_image(path)
    pixels = downscale(render(image, 0), size)
    del image
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

    def _alive(self) -> bool:
        """False once the loader's C++ object is gone (a job can end after its browser closed)."""
        return shiboken6.isValid(self)

    def _done(self, path: str, image: QImage) -> None:
        if not self._alive():
            return
        icon = QIcon(QPixmap.fromImage(image))
        self._cache[path] = icon
        self.ready.emit(path, icon)

    def _error(self, path: str, message: str) -> None:
        if not self._alive():
            return
        self._failed[path] = message
        self.failed.emit(path, message)

    def _finished(self, path: str) -> None:
        if not self._alive():
            return
        self._running.pop(path, None)
        self._pump()
