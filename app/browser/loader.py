"""Decode the selected image in the background.

``ImageLoader.load(path)`` reads the file on a worker; ``loaded(path, XRayImage)`` or
``failed(path, message)`` arrive on the GUI thread. Only the latest request matters: an older
one still running is cancelled and its result ignored. When decoding fails, the header alone is
read (``headerLoaded``) so the tag panel can still show what the file is.

Decoding runs in a separate process (:class:`ml.imaging.guarded.GuardedReader`, one worker
shared by every loader, started on first use): a native decoder that aborts or segfaults on a
damaged file ends that worker, not the application, and the viewer shows one readable error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, QThreadPool, Signal
from shiboken6 import isValid

from app.workers import Job, make_pool
from ml.imaging.guarded import GuardedReader
from ml.imaging.image import XRayImage
from ml.imaging.read import read_dataset

_READERS: dict[str, GuardedReader] = {}
_READERS_LOCK = threading.Lock()


def shared_reader(purpose: str = "images") -> GuardedReader:
    """The application's decode worker for ``purpose`` (its process starts on the first read):
    "images" for the image the user opens, "thumbnails" for the browser's and the wizard's
    thumbnails, so they never queue in front of the selected image."""
    with _READERS_LOCK:
        if purpose not in _READERS:
            _READERS[purpose] = GuardedReader()
        return _READERS[purpose]


def close_shared_reader() -> None:
    """Stop every decode worker (at exit; a later read starts a fresh one)."""
    with _READERS_LOCK:
        readers = list(_READERS.values())
        _READERS.clear()
    for reader in readers:
        reader.close()


class ImageLoader(QObject):
    started = Signal(str)
    loaded = Signal(str, object)  # path, XRayImage
    failed = Signal(str, str)  # path, readable message
    headerLoaded = Signal(str, object)  # path, pydicom Dataset (without pixel data)

    def __init__(self, pool: QThreadPool | None = None, parent: QObject | None = None,
                 read: Callable[[str], XRayImage] | None = None):
        super().__init__(parent)
        self.pool = pool or make_pool(1, "decoding")
        self._read = read or (lambda path: shared_reader().read(path, keep_pixel_data=True))  # tags show it
        self._job: Job | None = None
        self._path: str | None = None

    @property
    def current_path(self) -> str | None:
        return self._path

    @property
    def busy(self) -> bool:
        return self._job is not None

    def load(self, path: str) -> None:
        if self._job is not None:
            self._job.cancel()
        self._path = path
        job = Job(lambda _progress, _cancel: self._read(path), "opening the image", self.pool)
        self._job = job
        job.signals.finished.connect(lambda image: self._finished(job, path, image))
        job.signals.error.connect(lambda message: self._failed(job, path, message))
        job.signals.done.connect(lambda: self._done(job))
        self.started.emit(path)
        job.start(priority=1)

    def forget(self) -> None:
        """No current image any more (results still running are dropped)."""
        if self._job is not None:
            self._job.cancel()
            self._job = None
        self._path = None

    def load_header_only(self, path: str) -> None:
        """Make ``path`` current without decoding pixels (a non-image object): header only."""
        if self._job is not None:
            self._job.cancel()
            self._job = None
        self._path = path
        self.load_header(path)

    def load_header(self, path: str) -> None:
        """Read only the DICOM header (for non-image objects and files that fail to decode)."""
        job = Job(lambda _p, _c: read_dataset(path, stop_before_pixels=True), "reading the header", self.pool)
        job.signals.finished.connect(
            lambda ds: self.headerLoaded.emit(path, ds) if isValid(self) and self._path == path else None
        )
        job.start(priority=1)

    # the jobs' signals reach these through lambdas, which Qt does not disconnect when the loader
    # (a child of a closed window) is deleted: a late result is dropped, not emitted on a dead object
    def _finished(self, job: Job, path: str, image: object) -> None:
        if isValid(self) and job is self._job and not job.cancelled:
            self.loaded.emit(path, image)

    def _failed(self, job: Job, path: str, message: str) -> None:
        if isValid(self) and job is self._job:
            self.failed.emit(path, message)
            self.load_header(path)

    def _done(self, job: Job) -> None:
        if isValid(self) and job is self._job:
            self._job = None
