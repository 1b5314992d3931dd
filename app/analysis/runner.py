"""The Qt side of :class:`app.analysis.state.JobRunner`: background jobs on a thread pool.

The presenters are Qt-free; they start their work through a runner. This one runs it as an
:class:`app.workers.Job` on a pool (one thread for the analysis panel, so loading, classifying and
explaining never compete for the CPU); results, progress, partial results and errors arrive on the
GUI thread as the job's queued signals.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QThreadPool

from app.workers import Job, make_pool


class QtJobRunner:
    def __init__(self, pool: QThreadPool | None = None, threads: int | None = None, name: str = "") -> None:
        self.pool = pool if pool is not None or threads is None else make_pool(threads, name)

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
                signal.connect(slot)
        return job.start()


__all__ = ["QtJobRunner"]
