"""Wizard page 4: start ``cxr train`` as a separate process and follow it (curves, speed, ETA, log)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QElapsedTimer, Qt
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWizardPage,
)

from app.training.common import MessageLabel
from app.training.plots import CurvesWidget
from app.training.process import EXIT_STOPPED, TrainingProcess

KILL_AFTER_MS = 20_000  # when the window closes: wait this long for a clean stop, then kill


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _f(v: Any, fmt: str = "{:.4f}") -> str:
    return "–" if v is None else fmt.format(v)


class RunPage(QWizardPage):
    def __init__(self, wizard: Any) -> None:
        super().__init__()
        self.wiz = wizard
        self.setTitle("4. Train")
        self.setSubTitle(
            "Training runs in its own process, so the application stays responsive. Cancel stops after the "
            "current batch and keeps a checkpoint; Resume continues from it."
        )
        self.proc = TrainingProcess(self)
        self.proc.events.connect(self.handle_events)
        self.proc.finished.connect(self._finished)
        self.state = "idle"  # idle | running | stopping | stopped | failed | finished
        self.exit_code: int | None = None
        self.model_path: Path | None = None
        self.metrics_path: Path | None = None
        self.events_seen: list[dict[str, Any]] = []
        self._build()

    def _build(self) -> None:
        self.start_button = QPushButton("Start training")
        self.start_button.setObjectName("startButton")
        self.cancel_button = QPushButton("Cancel")
        self.resume_button = QPushButton("Resume")
        self.cancel_button.setEnabled(False)
        self.resume_button.setEnabled(False)
        buttons = QHBoxLayout()
        for b in (self.start_button, self.cancel_button, self.resume_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        self.run_label = QLabel("")
        self.run_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.run_label.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat("")
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
        layout.addWidget(self.progress)
        layout.addWidget(self.stats)
        layout.addWidget(self.message)
        layout.addWidget(split, 1)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.resume_button.clicked.connect(self.resume)
        self.clock = QElapsedTimer()

    # ------------------------------------------------------------------ control
    def initializePage(self) -> None:  # noqa: N802 - Qt override
        if self.state == "idle":
            c = self.wiz.config
            self.message.info(
                f"{c.arch}, {c.epochs} epoch(s), batch {c.batch_size}, learning rate {c.lr:g}"
                + (f", auto-tune with {c.tune_trials} trials" if c.tune_trials else "")
                + ". Press Start training."
            )

    def start(self) -> None:
        """Write the config into a new run folder and start ``cxr train`` on it."""
        if self.proc.is_running():
            return
        from ml.training.runner import new_run_dir

        try:
            config = self.wiz.build_config()
            run_dir = new_run_dir(config)
            run_dir.mkdir(parents=True)
            config.save(run_dir / "config.json")
        except Exception as exc:  # noqa: BLE001 - ConfigError/OSError: readable on the page
            self.message.error(str(exc))
            return
        self.wiz.run_dir = run_dir
        self.curves.clear()
        self.log.clear()
        self.trials.setRowCount(0)
        self.trials.setVisible(bool(config.tune_trials))
        self.events_seen = []
        self.model_path = self.metrics_path = None
        self._launch(run_dir, run_dir / "config.json", resume=False)

    def resume(self) -> None:
        run_dir = self.wiz.run_dir
        if run_dir is None or self.proc.is_running():
            return
        self._append("— resuming —")
        self._launch(run_dir, None, resume=True)

    def _launch(self, run_dir: Path, config_path: Path | None, resume: bool) -> None:
        self.state = "running"
        self.exit_code = None
        self.run_label.setText(f"Run folder: {run_dir}")
        self.message.info("Starting the training process (loading PyTorch)…")
        self.progress.setFormat("%p%")
        self.clock.start()
        self.proc.start(run_dir, config_path, resume)
        self._update_buttons()

    def cancel(self) -> None:
        if not self.proc.is_running():
            return
        self.proc.cancel()
        self.state = "stopping"
        self.message.info("Stopping after the current batch (saving a checkpoint)…")
        self._update_buttons()

    def shutdown(self) -> None:
        """The wizard closes: ask a running process to stop cleanly, kill it if it does not."""
        if not self.proc.is_running():
            return
        self.proc.cancel()
        if not self.proc.process.waitForFinished(KILL_AFTER_MS):
            self.proc.kill()

    def running(self) -> bool:
        return self.proc.is_running()

    def _update_buttons(self) -> None:
        running = self.proc.is_running()
        self.start_button.setEnabled(not running)
        self.start_button.setText("Start a new run" if self.wiz.run_dir is not None else "Start training")
        self.cancel_button.setEnabled(running and self.state == "running")
        resumable = self.wiz.run_dir is not None and (self.wiz.run_dir / "config.json").is_file()
        self.resume_button.setEnabled(not running and self.state in ("stopped", "failed") and resumable)
        self.completeChanged.emit()

    def _finished(self, code: int, message: str) -> None:
        self.exit_code = code
        if code == 0 and self.model_path is not None:
            self.state = "finished"
            self.message.info(f"Training finished in {_duration(self.clock.elapsed() / 1000)}. Press Next to "
                              "see how well the model does on the test images.")  # fmt: skip
            self.progress.setValue(self.progress.maximum())
        elif code == EXIT_STOPPED:
            self.state = "stopped"
            self.message.info(message)
        else:
            self.state = "failed"
            self.message.error(message if code != 0 else "The training process ended without a model.")
            self._append(f"ERROR: {message}")
        self._update_buttons()

    def isComplete(self) -> bool:  # noqa: N802 - Qt override
        return self.state == "finished"

    # ------------------------------------------------------------------ events
    def _append(self, line: str) -> None:
        self.log.appendPlainText(line)

    def handle_events(self, events: list[dict[str, Any]]) -> None:
        for e in events:
            self.events_seen.append(e)
            getattr(self, "_on_" + str(e.get("event")), lambda _e: None)(e)

    def _on_start(self, e: dict[str, Any]) -> None:
        what = "Resumed" if e.get("resumed") else "Started"
        self._append(f"{what} on {e.get('device')} ({e.get('world_size', 1)} process(es)).")
        self.message.info("Reading the images…")

    def _on_data(self, e: dict[str, Any]) -> None:
        rep = e.get("report") or {}
        counts = ", ".join(f"{k} {v}" for k, v in (rep.get("per_class") or {}).items())
        self._append(f"Data: {rep.get('n_images')} images ({counts}).")

    def _on_cache(self, e: dict[str, Any]) -> None:
        done, total = int(e.get("done") or 0), int(e.get("total") or 0)
        self.message.info(f"Preparing images: {done} of {total} (decoded once, then cached)…")

    def _on_split(self, e: dict[str, Any]) -> None:
        sp = (e.get("summary") or {}).get("splits", {})
        sp = {k: sp[k] for k in ("train", "val", "test") if k in sp}
        self._append("Split: " + ", ".join(f"{k} {v['images']} images / {v['patients']} patients"
                                           for k, v in sp.items()))  # fmt: skip

    def _on_epoch_start(self, e: dict[str, Any]) -> None:
        frozen = " (backbone frozen)" if e.get("frozen_backbone") else ""
        self.message.info(
            f"Epoch {e.get('epoch')} of {e.get('epochs')}{frozen}, learning rate {e.get('lr', 0):.2e}"
        )

    def _on_batch(self, e: dict[str, Any]) -> None:
        epoch, batch, batches = int(e["epoch"]), int(e["batch"]), int(e.get("batches") or 1)
        epochs = int((self.wiz.config.epochs if self.wiz.config else 1) or 1)
        for prev in reversed(self.events_seen):
            if prev.get("event") == "epoch_start":
                epochs = int(prev.get("epochs") or epochs)
                break
        frac = ((epoch - 1) + batch / batches) / max(epochs, 1)
        self.progress.setValue(min(self.progress.maximum(), round(frac * self.progress.maximum())))
        self.curves.add_batch(epoch, batch, batches, e.get("loss"))
        self.stats.setText(
            f"Epoch {epoch}/{epochs} · batch {batch}/{batches} · loss {_f(e.get('loss'))} · "
            f"{_f(e.get('images_per_s'), '{:.1f}')} images/s · about {_duration(e.get('eta_s'))} left"
        )

    def _on_epoch_end(self, e: dict[str, Any]) -> None:
        self.curves.add_epoch(e)
        parts = [f"Epoch {e.get('epoch')}/{e.get('epochs')}: train loss {_f(e.get('train_loss'))}",
                 f"val loss {_f(e.get('val_loss'))}", f"val accuracy {_f(e.get('val_accuracy'), '{:.3f}')}",
                 f"val AUROC {_f(e.get('val_auroc'), '{:.3f}')}",
                 f"{_f(e.get('images_per_s'), '{:.1f}')} images/s"]  # fmt: skip
        self._append(", ".join(parts) + ("  ★ best so far" if e.get("best") else ""))

    def _on_checkpoint(self, e: dict[str, Any]) -> None:
        if e.get("kind") == "stop":
            self._append(f"Checkpoint saved at epoch {e.get('epoch')}, batch {e.get('batch')}.")

    def _on_stopped(self, e: dict[str, Any]) -> None:
        self._append("Stopped on request; the run can be resumed.")

    def _on_early_stop(self, e: dict[str, Any]) -> None:
        self._append(f"Early stop after epoch {e.get('epoch')}: {e.get('monitor')} did not improve for "
                     f"{e.get('patience')} epochs (best {_f(e.get('best_value'))}).")  # fmt: skip

    def _on_trial(self, e: dict[str, Any]) -> None:
        row = self.trials.rowCount()
        self.trials.insertRow(row)
        params = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                           for k, v in (e.get("params") or {}).items())  # fmt: skip
        result = e.get("state") if e.get("value") is None else f"{e.get('state')} {e['value']:.4f}"
        for j, text in enumerate((str(e.get("number")), str(result), params)):
            self.trials.setItem(row, j, QTableWidgetItem(text))
        self._append(f"Auto-tune trial {e.get('number')}: {result} ({params})")

    def _on_tune_done(self, e: dict[str, Any]) -> None:
        self._append(f"Auto-tune done after {e.get('trials')} trials; training with the best settings: "
                     f"{e.get('best_params')}.")  # fmt: skip
        self.curves.clear()

    def _on_finished(self, e: dict[str, Any]) -> None:
        self.model_path = Path(e["model_path"]) if e.get("model_path") else None
        self.metrics_path = Path(e["metrics_path"]) if e.get("metrics_path") else None
        m = e.get("metrics") or {}
        self._append(f"Finished: test accuracy {_f(m.get('accuracy'), '{:.3f}')}, "
                     f"macro AUROC {_f(m.get('macro_auroc'), '{:.3f}')}. Model: {self.model_path}")  # fmt: skip

    def _on_warning(self, e: dict[str, Any]) -> None:
        self._append(f"Note: {e.get('message')}")

    def _on_error(self, e: dict[str, Any]) -> None:
        self._append(f"ERROR: {e.get('message')}")
