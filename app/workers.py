"""Thread-pool jobs with progress, cancel, finished and error signals.

A :class:`Job` runs one function on a ``QThreadPool``. The function receives a progress callback
and a :class:`ml.progress.CancelToken` (the Qt-free protocol every long ``ml`` function speaks)
and returns a result. Results, progress and errors come back as queued signals on the GUI thread,
so a worker never touches a widget.

Errors the user can cause (:class:`ml.errors.CxrError`) arrive as their readable message;
cancellation arrives as ``cancelled``; anything else is logged with its traceback and arrives as
"Something went wrong ...", and the application keeps running.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, Signal

from ml.errors import CancelledError, CxrError
from ml.progress import CancelToken

log = logging.getLogger(__name__)

# fn(progress, cancel) -> result ; progress(done, total, message)
JobFunction = Callable[[Callable[[int, int, str], None], CancelToken], Any]

SOMETHING_WENT_WRONG = "Something went wrong"


def unexpected_message(description: str) -> str:
    what = f" while {description}" if description else ""
    return f"{SOMETHING_WENT_WRONG}{what}. The details are in the log; the application keeps running."


class JobSignals(QObject):
    """Signals of one job; emitted from the worker thread, delivered on the GUI thread."""

    progress = Signal(int, int, str)  # done, total, message
    finished = Signal(object)  # the function's result
    error = Signal(str)  # a readable message
    cancelled = Signal()
    done = Signal()  # always emitted last, whatever the outcome


class Job:
    """One unit of background work. Create it, connect ``job.signals``, then ``start()`` it.

    ``start`` hands :meth:`run` to a ``QThreadPool`` (PySide wraps it in a ``QRunnable`` that the
    pool owns and deletes), so the lifetime of this Python object never races the pool thread.
    """

    def __init__(self, fn: JobFunction, description: str = "", pool: QThreadPool | None = None):
        self.fn = fn
        self.description = description
        self.pool = pool
        self.token = CancelToken()
        self.signals = JobSignals()
        self.result: Any = None
        self.error_message: str | None = None
        self.signals.done.connect(self._release)

    def cancel(self) -> None:
        """Ask the function to stop at its next ``cancel.check()``."""
        self.token.cancel()

    @property
    def cancelled(self) -> bool:
        return self.token.cancelled

    def start(self, priority: int = 0) -> Job:
        _RUNNING.add(self)
        (self.pool or QThreadPool.globalInstance()).start(self.run, priority)
        return self

    def _report(self, done: int, total: int, message: str = "") -> None:
        self.signals.progress.emit(int(done), int(total), str(message))

    def run(self) -> None:  # worker thread
        try:
            if self.token.cancelled:
                raise CancelledError("Cancelled by the user.")
            self.result = self.fn(self._report, self.token)
        except CancelledError:
            self.signals.cancelled.emit()
        except CxrError as exc:
            self.error_message = str(exc)
            self.signals.error.emit(self.error_message)
        except Exception:  # noqa: BLE001 - a worker must never take the application down
            log.exception("unexpected error in background job %r", self.description)
            self.error_message = unexpected_message(self.description)
            self.signals.error.emit(self.error_message)
        else:
            if self.token.cancelled:
                self.signals.cancelled.emit()
            else:
                self.signals.finished.emit(self.result)
        finally:
            self.signals.done.emit()

    def _release(self) -> None:
        _RUNNING.discard(self)


# Jobs started and not yet done: keeps the Python wrappers (and their signals) alive until the
# last queued signal has been delivered on the GUI thread.
_RUNNING: set[Job] = set()


def running_jobs() -> int:
    return len(_RUNNING)


def make_pool(max_threads: int, name: str = "") -> QThreadPool:
    pool = QThreadPool()
    pool.setMaxThreadCount(max(1, max_threads))
    if name:
        pool.setObjectName(name)
    return pool


def shutdown_jobs(timeout_ms: int = 10_000) -> bool:
    """Cancel every running job and wait for their threads (at exit: no thread outlives Python).

    Returns True when every pool finished within ``timeout_ms``.
    """
    jobs = list(_RUNNING)
    for job in jobs:
        job.cancel()
    pools = {id(p): p for p in (job.pool or QThreadPool.globalInstance() for job in jobs)}
    pools.setdefault(id(QThreadPool.globalInstance()), QThreadPool.globalInstance())
    return all(pool.waitForDone(timeout_ms) for pool in pools.values())
