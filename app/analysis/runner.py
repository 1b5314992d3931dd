"""The Qt side of :class:`app.analysis.state.JobRunner`: background jobs on a thread pool.

The presenters are Qt-free; they start their work through a runner. This one runs it as an
:class:`app.workers.Job` on a pool (one thread for the analysis panel, so loading, classifying and
explaining never compete for the CPU); results, progress, partial results and errors arrive on the
GUI thread as the job's queued signals. Given an ``owner`` (the view), nothing is delivered once
that widget is gone (a job may end after its window was closed and deleted).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QThreadPool

from app.workers import Job, make_pool


class QtJobRunner:
    def __init__(
        self, pool: QThreadPool | None = None, threads: int | None = None, name: str = "",
        owner: QObject | None = None,
    ) -> None:  # fmt: skip
        self.pool = pool if pool is not None or threads is None else make_pool(threads, name)
        self.owner = owner

    def _guarded(self, slot: Callable[..., None]) -> Callable[..., None]:
        owner = self.owner
        if owner is None:
            return slot

        def deliver(*args: Any) -> None:
            if shiboken6.isValid(owner):
                slot(*args)

        return deliver

    def start(
        self,
        fn: Callable[..., Any],
        description: str,
        *,
        finished: Callable[[Any], None] | None = None,
        error: Callable[[str], None] | None = None,
        progress: Callable[[int, int, str], None] | None = None,
        cancelled: Callable[[], None] | None = None,
        done: Callable[[], None] | None = None,
        partial: Callable[[Any], None] | None = None,
    ) -> Job:
        job = Job(fn, description, self.pool)
        for signal, slot in ((job.signals.finished, finished), (job.signals.error, error),
                             (job.signals.progress, progress), (job.signals.cancelled, cancelled),
                             (job.signals.done, done), (job.signals.partial, partial)):  # fmt: skip
            if slot is not None:
                signal.connect(self._guarded(slot))
        return job.start()


__all__ = ["QtJobRunner"]
