"""The training process: ``cxr train`` started with QProcess, followed through its events file.

The wizard never trains in its own process: :class:`TrainingProcess` starts ``python -m ml train
--config FILE --out DIR --events DIR/events.jsonl --quiet`` (a frozen application runs its own
executable with the ``train`` arguments), polls the JSON-lines events with
:func:`ml.training.events.read_events` on a timer and re-emits them as a signal. Cancel creates
``<run>/STOP``: the trainer saves a resumable checkpoint and stops after the current batch.
Nothing here blocks the GUI thread.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from app.training.commands import cxr_program, export_config, repo_root, torchrun_command, train_arguments
from app.training.run_presenter import EXIT_STOPPED
from ml.training.events import ErrorEvent, read_events

POLL_MS = 250
STOP_FILE = "STOP"  # ml.training.runner.STOP_FILE (not imported: that module imports torch)

__all__ = ["EXIT_STOPPED", "TrainingProcess", "cxr_program", "export_config", "torchrun_command", "train_arguments"]


class TrainingProcess(QObject):
    """One ``cxr train`` process and its events. ``finished(exit_code, message)`` fires once it ends."""

    events = Signal(list)  # list[ml.training.events.Event]: new events, in order
    started = Signal()
    finished = Signal(int, str)  # exit status (-1 when it crashed), a readable last line

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.run_dir: Path | None = None
        self.offset = 0
        self.process: QProcess | None = None
        self.stderr_tail: deque[str] = deque(maxlen=40)
        self.last_error_event = ""
        self.cancel_requested = False
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)

    # ------------------------------------------------------------------ control
    def is_running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def start(self, run_dir: Path, config_path: Path | None = None, resume: bool = False) -> None:
        if self.is_running():
            raise RuntimeError("a training process is already running")
        self.run_dir = Path(run_dir)
        events = self.run_dir / "events.jsonl"
        self.offset = events.stat().st_size if resume and events.is_file() else 0
        self.stderr_tail.clear()
        self.last_error_event = ""
        self.cancel_requested = False
        program, lead = cxr_program()
        proc = QProcess(self)
        env = QProcessEnvironment()
        for key, value in os.environ.items():
            env.insert(key, value)
        if not getattr(sys, "frozen", False):
            root = repo_root()
            old = os.environ.get("PYTHONPATH", "")
            env.insert("PYTHONPATH", root + (os.pathsep + old if old else ""))
        env.insert("PYTHONUNBUFFERED", "1")
        proc.setProcessEnvironment(env)
        proc.setWorkingDirectory(str(self.run_dir.parent))
        proc.readyReadStandardError.connect(self._read_stderr)
        proc.readyReadStandardOutput.connect(lambda: proc.readAllStandardOutput())
        proc.finished.connect(self._finished)
        proc.errorOccurred.connect(self._error)
        self.process = proc
        proc.start(program, [*lead, *train_arguments(self.run_dir, config_path, resume)])
        self.timer.start()
        self.started.emit()

    def cancel(self) -> None:
        """Ask the run to stop after the current batch (it saves a resumable checkpoint first)."""
        if self.run_dir is None or not self.is_running():
            return
        self.cancel_requested = True
        (self.run_dir / STOP_FILE).touch()

    def kill(self) -> None:
        if self.is_running():
            self.process.kill()
            self.process.waitForFinished(5000)

    # ------------------------------------------------------------------ following
    def poll(self) -> None:
        if self.run_dir is None:
            return
        new, self.offset = read_events(self.run_dir / "events.jsonl", self.offset)
        for e in new:
            if isinstance(e, ErrorEvent):
                self.last_error_event = e.message
        if new:
            self.events.emit(new)

    def _read_stderr(self) -> None:
        if self.process is None:
            return
        text = bytes(self.process.readAllStandardError().data()).decode("utf-8", "replace")
        for line in text.splitlines():
            if line.strip():
                self.stderr_tail.append(line.rstrip())

    def last_line(self) -> str:
        return self.stderr_tail[-1] if self.stderr_tail else ""

    def _message(self, code: int) -> str:
        if code == 0:
            return "Training finished."
        if code == EXIT_STOPPED:
            return "Training stopped; a resumable checkpoint was saved. Press Resume to continue."
        line = self.last_line()
        if line.startswith("cxr: error: "):
            line = line[len("cxr: error: ") :]
        return line or self.last_error_event or f"The training process ended unexpectedly (status {code})."

    def _finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self.timer.stop()
        self._read_stderr()
        self.poll()
        if status == QProcess.ExitStatus.CrashExit:
            line = self.last_line() or "no message"
            self.finished.emit(-1, f"The training process crashed: {line}")
        else:
            self.finished.emit(int(code), self._message(int(code)))

    def _error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.timer.stop()
            self.finished.emit(-1, f"Could not start the training process ({cxr_program()[0]}).")
