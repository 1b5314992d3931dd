"""Indexing in the background: files, folders, ZIPs and DICOMDIRs -> patient/study/series.

``IndexController.open(paths)`` runs :func:`ml.imaging.index.build_index` on a one-thread pool.
Instances arrive in batches (``batch``) while it runs so the browser fills progressively; the
final :class:`StudyIndex` arrives with ``finished``. Requests made while one runs are queued;
``cancel()`` stops the running one and drops the queue.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, QThreadPool, Signal

from app.workers import Job, make_pool


@dataclass
class IndexRequest:
    paths: list[str]
    request_id: int
    job: Job | None = field(default=None, repr=False)


class IndexController(QObject):
    batch = Signal(int, object)  # request id, list[InstanceEntry]
    progress = Signal(int, int, str)  # done, total, message
    finished = Signal(int, object)  # request id, StudyIndex
    failed = Signal(int, str)  # request id, readable message
    cancelled = Signal(int)
    busyChanged = Signal(bool)

    def __init__(self, pool: QThreadPool | None = None, batch_size: int = 50, parent: QObject | None = None):
        super().__init__(parent)
        self.pool = pool or make_pool(1, "indexing")
        self.batch_size = batch_size
        self._queue: deque[IndexRequest] = deque()
        self._current: IndexRequest | None = None
        self._next_id = 0

    @property
    def busy(self) -> bool:
        return self._current is not None

    def open(self, paths: list[str]) -> int:
        """Queue ``paths`` for indexing; returns the request id used in the signals."""
        self._next_id += 1
        self._queue.append(IndexRequest(list(paths), self._next_id))
        if self._current is None:
            self._start_next()
        return self._next_id

    def cancel(self) -> None:
        self._queue.clear()
        if self._current is not None and self._current.job is not None:
            self._current.job.cancel()

    def _start_next(self) -> None:
        if not self._queue:
            if self._current is None:
                return
            self._current = None
            self.busyChanged.emit(False)
            return
        was_idle = self._current is None
        request = self._current = self._queue.popleft()
        batch_size = self.batch_size

        def work(progress, cancel):
            from ml.imaging.index import build_index  # imported on first use, off the GUI thread

            return build_index(
                request.paths, progress=progress, cancel=cancel,
                on_batch=lambda entries: progress.partial(list(entries)), batch_size=batch_size,
            )

        job = Job(work, "indexing the opened files", self.pool)
        request.job = job
        rid = request.request_id
        job.signals.progress.connect(self.progress)
        job.signals.partial.connect(lambda entries: self.batch.emit(rid, entries))  # the job's typed channel
        job.signals.finished.connect(lambda index: self.finished.emit(rid, index))
        job.signals.error.connect(lambda message: self.failed.emit(rid, message))
        job.signals.cancelled.connect(lambda: self.cancelled.emit(rid))
        job.signals.done.connect(lambda: self._finish(request))
        if was_idle:
            self.busyChanged.emit(True)
        job.start()

    def _finish(self, request: IndexRequest) -> None:
        if self._current is request:
            self._start_next()
