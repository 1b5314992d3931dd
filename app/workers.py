"""Thread-pool jobs with progress, partial results, cancel, finished and error signals.

A :class:`Job` runs one function on a ``QThreadPool``. The function receives a
:class:`JobReporter` (a progress callback ``progress(done, total, message)``, so every ``ml``
function that takes a ``ProgressCallback`` accepts it, plus ``progress.partial(value)`` for partial
results) and a :class:`ml.progress.CancelToken` (the Qt-free protocol every long ``ml`` function
speaks) and returns a result. A function may instead be a generator: each value it yields arrives
as a partial result (``signals.partial``), the cancel token is checked between yields, and its
``return`` value is the result (superqt's ``thread_worker`` works the same way). Results, progress,
partial results and errors come back as queued signals on the GUI thread, so a worker never
touches a widget and no relay ``QObject`` is needed.

:class:`app.progress.ProgressPanel` is the one progress widget (bar, message, cancel) bound to a
job.

Errors the user can cause (:class:`ml.errors.CxrError`) arrive as their readable message;
cancellation arrives as ``cancelled``; anything else is logged with its traceback and arrives as
"Something went wrong ...", and the application keeps running.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from PySide6.QtCore import QObject, QThreadPool, Signal

from ml.errors import CancelledError, CxrError
from ml.progress import CancelToken

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    """One progress report. ``total == 0`` means "busy, amount unknown" (an indeterminate bar)."""

    done: int = 0
    total: int = 0
    message: str = ""

    @property
    def indeterminate(self) -> bool:
        return self.total <= 0

    @property
    def fraction(self) -> float | None:
        """``done / total`` clipped to [0, 1]; None when the total is unknown."""
        return None if self.total <= 0 else min(1.0, max(0.0, self.done / self.total))


JobState = Literal["pending", "running", "finished", "error", "cancelled"]

SOMETHING_WENT_WRONG = "Something went wrong"


def unexpected_message(description: str) -> str:
    what = f" while {description}" if description else ""
    return f"{SOMETHING_WENT_WRONG}{what}. The details are in the log; the application keeps running."


class JobSignals(QObject):
    """Signals of one job; emitted from the worker thread, delivered on the GUI thread."""

    progress = Signal(int, int, str)  # done, total, message
    partial = Signal(object)  # a partial result: progress.partial(value), or a generator's yield
    finished = Signal(object)  # the function's result
    error = Signal(str)  # a readable message
    cancelled = Signal()
    done = Signal()  # always emitted last, whatever the outcome


class JobReporter:
    """What a job function receives as ``progress``: call it to report, ``.partial`` to hand over
    a partial result. Both may be called from the worker thread."""

    def __init__(self, signals: JobSignals, job: Job):
        self._signals = signals
        self._job = job

    def __call__(self, done: int, total: int, message: str = "") -> None:
        report = Progress(int(done), int(total), str(message))
        self._job.last_progress = report
        self._signals.progress.emit(report.done, report.total, report.message)

    def partial(self, value: Any) -> None:
        self._signals.partial.emit(value)


# fn(progress, cancel) -> result (or a generator: yields partial results, returns the result)
JobFunction = Callable[[JobReporter, CancelToken], Any]


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
        self.last_progress = Progress(0, 0, description)
        self.state: JobState = "pending"
        self.reporter = JobReporter(self.signals, self)
        self._done = False
        self.signals.done.connect(self._release)

    @property
    def is_done(self) -> bool:
        """True once ``done`` has been delivered on the GUI thread (whatever the outcome)."""
        return self._done

    @property
    def running(self) -> bool:
        """Started and not yet done (the state a progress widget shows as busy)."""
        return self.state != "pending" and not self._done

    def cancel(self) -> None:
        """Ask the function to stop at its next ``cancel.check()``."""
        self.token.cancel()

    @property
    def cancelled(self) -> bool:
        return self.token.cancelled

    def start(self, priority: int = 0) -> Job:
        _RUNNING.add(self)
        self.state = "running"
        (self.pool or QThreadPool.globalInstance()).start(self.run, priority)
        return self

    def _drain(self, generator: Any) -> Any:
        """Run a generator function: each yield is a partial result, ``return`` the result."""
        while True:
            self.token.check()
            try:
                value = next(generator)
            except StopIteration as stop:
                return stop.value
            self.signals.partial.emit(value)

    def run(self) -> None:  # worker thread
        try:
            if self.token.cancelled:
                raise CancelledError("Cancelled by the user.")
            result = self.fn(self.reporter, self.token)
            if inspect.isgenerator(result):
                generator = result
                try:
                    result = self._drain(generator)
                finally:
                    generator.close()  # runs its finally blocks when cancelled mid-way
            self.result = result
        except CancelledError:
            self.state = "cancelled"
            self.signals.cancelled.emit()
        except CxrError as exc:
            self.state = "error"
            self.error_message = str(exc)
            self.signals.error.emit(self.error_message)
        except Exception:  # noqa: BLE001 - a worker must never take the application down
            log.exception("unexpected error in background job %r", self.description)
            self.state = "error"
            self.error_message = unexpected_message(self.description)
            self.signals.error.emit(self.error_message)
        except BaseException as exc:  # a Rust extension's panic (pyo3_runtime.PanicException)
            if type(exc).__name__ != "PanicException":
                raise
            log.error("a native library failed in background job %r", self.description, exc_info=True)
            self.state = "error"
            self.error_message = unexpected_message(self.description)
            self.signals.error.emit(self.error_message)
        else:
            if self.token.cancelled:
                self.state = "cancelled"
                self.signals.cancelled.emit()
            else:
                self.state = "finished"
                self.signals.finished.emit(self.result)
        finally:
            try:
                self.signals.done.emit()
            except RuntimeError:  # the signals object is gone (its window closed): nothing to deliver to,
                self._release()  # but the job must not stay "running" forever (running_jobs() waits on it)

    def _release(self) -> None:
        self._done = True
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
