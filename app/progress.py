"""The one progress widget: a bar, a message and a cancel button, bound to a :class:`Job`.

Use it everywhere work runs in the background (opening files, loading a model, classifying,
explaining, downloading, scanning a training folder, a training run)::

    self.progress = ProgressPanel(cancel_tooltip="Stop the analysis", object_name="analysisProgress")
    job = Job(fn, "classifying")
    self.progress.bind(job, "Classifying")   # busy now; follows job.signals; idle when done
    job.start()

While bound it is busy: visible (or shown at rest when ``hide_when_idle=False``), cancel enabled,
the bar indeterminate (animated) until the job reports a total. When the job is done, whatever the
outcome, it goes idle: the bar stops animating (range 0..1, never 0..0), cancel hides, and
``busyChanged(False)`` is emitted. A newer :meth:`bind` replaces the old job (its late signals are
ignored).

Work that is not one :class:`Job` (the indexing queue, the training subprocess) drives it with
:meth:`set_busy`, :meth:`set_progress` and :meth:`set_idle`, and listens to ``cancelRequested``.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QToolButton, QWidget

from app.workers import Job, Progress

# (progress) -> the bar's text; may use QProgressBar's %p (percent), %v (value), %m (maximum)
Formatter = Callable[[Progress], str]


def percent_text(p: Progress) -> str:
    """"Classifying (40%)"; the message alone while the total is unknown."""
    return f"{p.message} (%p%)" if not p.indeterminate else p.message


def count_text(p: Progress) -> str:
    """"Reading files 12/80"."""
    return f"{p.message} %v/%m" if not p.indeterminate else p.message


def megabytes_text(p: Progress) -> str:
    """"Downloading: 1.5 of 20.0 MB" (done and total in bytes)."""
    if p.indeterminate:
        return p.message
    return f"{p.message}: {p.done / 2**20:.1f} of {p.total / 2**20:.1f} MB"


# QProgressBar works in int; byte counts of large files exceed 2**31, so scale down when needed.
_INT_MAX = 2**31 - 1


class ProgressPanel(QWidget):
    """Bar + optional message label + cancel button. See the module docstring."""

    cancelRequested = Signal()  # the user pressed Cancel (a bound job is cancelled as well)
    busyChanged = Signal(bool)

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        formatter: Formatter = percent_text,
        cancel_text: str = "Cancel",
        cancel_tooltip: str = "",
        cancellable: bool = True,
        hide_when_idle: bool = True,
        show_label: bool = False,
        object_name: str = "",
    ):
        super().__init__(parent)
        self.formatter = formatter
        self.cancellable = cancellable
        self.hide_when_idle = hide_when_idle
        self.bar = QProgressBar(self)
        self.bar.setTextVisible(True)
        self.label = QLabel(self)  # the last message in words, below/next to the bar
        self.label.setWordWrap(True)
        self.label.setVisible(show_label)
        self.cancel_button = QToolButton(self, text=cancel_text)
        if cancel_tooltip:
            self.cancel_button.setToolTip(cancel_tooltip)
        self.cancel_button.clicked.connect(self.cancel)
        if object_name:
            self.setObjectName(object_name)
            self.bar.setObjectName(f"{object_name}Bar")
            self.cancel_button.setObjectName(f"{object_name}Cancel")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.bar, 1)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.cancel_button)
        self.job: Job | None = None
        self._busy = True  # so that the first set_idle takes effect
        self.last = Progress()
        self.set_idle()

    # -- state -------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def animating(self) -> bool:
        """True while the bar shows the indeterminate (moving) pattern."""
        return not self.isHidden() and self.bar.maximum() == 0 and self.bar.minimum() == 0

    # -- binding a job -----------------------------------------------------------------------------
    def bind(self, job: Job, message: str = "") -> Job:
        """Follow ``job`` until it is done (its progress, then idle). Returns ``job``."""
        self.job = job
        job.signals.progress.connect(lambda d, t, m, j=job: self._job_progress(j, d, t, m))
        job.signals.done.connect(lambda j=job: self._job_done(j))
        if job.is_done:
            self.set_idle()
            return job
        self.set_busy(True, message or job.description)
        if job.last_progress != Progress(0, 0, job.description):  # it reported before being bound
            self.set_progress(job.last_progress.done, job.last_progress.total, job.last_progress.message)
        return job

    def _job_progress(self, job: Job, done: int, total: int, message: str) -> None:
        if job is self.job and self._busy:
            self.set_progress(done, total, message)

    def _job_done(self, job: Job) -> None:
        if job is self.job:
            self.job = None
            self.set_idle()

    def cancel(self) -> None:
        """Cancel the bound job (if any) and tell the owner (``cancelRequested``)."""
        if self.job is not None:
            self.job.cancel()
        self.cancel_button.setEnabled(False)  # pressed once: it takes effect at the next check
        self.cancelRequested.emit()

    # -- driving it by hand ------------------------------------------------------------------------
    def set_busy(self, busy: bool = True, message: str = "") -> None:
        """Busy: visible, cancel enabled, bar indeterminate until a total arrives. Not busy: idle."""
        if not busy:
            self.set_idle(message)
            return
        was = self._busy
        self._busy = True
        self.setVisible(True)
        self.cancel_button.setVisible(self.cancellable)
        self.cancel_button.setEnabled(True)
        self.set_progress(0, 0, message)
        if not was:
            self.busyChanged.emit(True)

    def set_progress(self, done: int, total: int, message: str = "") -> None:
        self.last = Progress(int(done), int(total), message)
        total, done = max(0, int(total)), max(0, int(done))
        scale = 1 if total <= _INT_MAX else -(-total // _INT_MAX)
        self.bar.setRange(0, total // scale)
        self.bar.setValue(min(done, total) // scale if total else 0)
        self.bar.setFormat(self.formatter(self.last))
        self.label.setText(message)

    def set_idle(self, message: str = "") -> None:
        """Not busy: the bar stops (range 0..1), cancel hides; hidden when ``hide_when_idle``."""
        was = self._busy
        self._busy = False
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setFormat(message)
        self.label.setText(message)
        self.cancel_button.setVisible(False)
        self.setVisible(not self.hide_when_idle)
        if was:
            self.busyChanged.emit(False)


__all__ = ["Formatter", "ProgressPanel", "count_text", "megabytes_text", "percent_text"]
