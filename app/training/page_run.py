"""Wizard page 4: start ``cxr train`` as a separate process and follow it (curves, speed, ETA, log)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWizardPage,
)

from app.progress import ProgressPanel
from app.training.common import MessageLabel
from app.training.plots import CurvesWidget
from app.training.process import TrainingProcess
from app.training.run_presenter import RunButtons, RunPresenter
from app.training.session import TrainingSession

KILL_AFTER_MS = 20_000  # when the window closes: wait this long for a clean stop, then kill
STEPS = 1000  # the progress bar's resolution


class RunPage(QWizardPage):
    """The view of :class:`RunPresenter`: buttons, the one progress panel, curves, trials and the log."""

    def __init__(self, session: TrainingSession) -> None:
        super().__init__()
        self.setTitle("4. Train")
        self.setSubTitle(
            "Training runs in its own process, so the application stays responsive. Cancel stops after the "
            "current batch and keeps a checkpoint; Resume continues from it."
        )
        self.session = session
        self.proc = TrainingProcess(self)
        self.presenter = RunPresenter(self, session, self.proc)
        self.proc.events.connect(self.presenter.handle_events)
        self.proc.finished.connect(self.presenter.process_finished)
        self._build()

    def _build(self) -> None:
        self.start_button = QPushButton("Start training")
        self.start_button.setObjectName("startButton")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setEnabled(False)
        self.progress_panel = ProgressPanel(cancel_tooltip="Stop after the current batch (keeps a checkpoint)",
                                            hide_when_idle=False, object_name="runProgress")  # fmt: skip
        self.progress = self.progress_panel.bar
        self.cancel_button = self.progress_panel.cancel_button
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.resume_button)
        buttons.addStretch(1)
        self.run_label = QLabel("")
        self.run_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.run_label.setWordWrap(True)
        self.stats = QLabel("")
        self.stats.setObjectName("runStats")
        self.message = MessageLabel()
        self.message.setObjectName("runMessage")
        self.curves = CurvesWidget()
        self.trials = QTableWidget(0, 3)
        self.trials.setHorizontalHeaderLabels(["Trial", "Result", "Settings"])
        self.trials.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.trials.verticalHeader().setVisible(False)
        self.trials.setVisible(False)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.curves)
        split.addWidget(self.trials)
        split.addWidget(self.log)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(2, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.run_label)
        layout.addWidget(self.progress_panel)
        layout.addWidget(self.stats)
        layout.addWidget(self.message)
        layout.addWidget(split, 1)
        p = self.presenter
        self.start_button.clicked.connect(p.start)
        self.progress_panel.cancelRequested.connect(p.cancel)
        self.resume_button.clicked.connect(p.resume)

    # ------------------------------------------------------------------ what the tests and the wizard use
    @property
    def state(self) -> str:
        return self.presenter.state

    @property
    def exit_code(self) -> int | None:
        return self.session.run.exit_code

    @property
    def events_seen(self) -> list[dict[str, Any]]:
        return self.session.run.events

    def initializePage(self) -> None:  # noqa: N802 - Qt override
        self.presenter.page_shown()

    def start(self) -> None:
        self.presenter.start()

    def cancel(self) -> None:
        self.presenter.cancel()

    def resume(self) -> None:
        self.presenter.resume()

    def running(self) -> bool:
        return self.proc.is_running()

    def isComplete(self) -> bool:  # noqa: N802 - Qt override
        return self.presenter.is_complete()

    def shutdown(self) -> None:
        """The wizard closes: ask a running process to stop cleanly, kill it if it does not."""
        if not self.proc.is_running():
            return
        self.proc.cancel()
        if not self.proc.process.waitForFinished(KILL_AFTER_MS):
            self.proc.kill()

    # ------------------------------------------------------------------ RunView
    def show_message(self, text: str, error: bool = False) -> None:
        (self.message.error if error else self.message.info)(text)

    def show_run_folder(self, text: str) -> None:
        self.run_label.setText(text)

    def show_buttons(self, b: RunButtons) -> None:
        self.start_button.setEnabled(b.start)
        self.start_button.setText(b.start_text)
        self.cancel_button.setEnabled(b.cancel)
        self.resume_button.setEnabled(b.resume)

    def reset(self, tuning: bool) -> None:
        self.curves.clear()
        self.log.clear()
        self.stats.setText("")
        self.trials.setRowCount(0)
        self.trials.setVisible(tuning)

    def append_log(self, line: str) -> None:
        self.log.appendPlainText(line)

    def show_running(self, running: bool) -> None:
        if running:
            self.progress_panel.set_busy(True, "Training")
        else:
            self.progress_panel.set_idle()

    def show_progress(self, fraction: float) -> None:
        self.progress_panel.set_progress(round(fraction * STEPS), STEPS, "Training")

    def show_stats(self, text: str) -> None:
        self.stats.setText(text)

    def add_batch(self, epoch: int, batch: int, batches: int, loss: float | None) -> None:
        self.curves.add_batch(epoch, batch, batches, loss)

    def add_epoch(self, record: dict[str, Any]) -> None:
        self.curves.add_epoch(record)

    def clear_curves(self) -> None:
        self.curves.clear()

    def add_trial(self, cells: tuple[str, str, str]) -> None:
        row = self.trials.rowCount()
        self.trials.insertRow(row)
        for j, text in enumerate(cells):
            self.trials.setItem(row, j, QTableWidgetItem(text))

    def complete_changed(self) -> None:
        self.completeChanged.emit()
