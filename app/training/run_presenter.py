"""Wizard page 4's rules, Qt-free: start, cancel and resume a ``cxr train`` process, follow its events.

The process is anything with ``is_running()``, ``start(run_dir, config_path, resume)`` and
``cancel()`` (:class:`app.training.process.TrainingProcess` in the application, a fake in tests).
Events arrive typed (:mod:`ml.training.events`) and are described with its one
:func:`~ml.training.events.describe`, the same sentences ``cxr train`` prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from app.training.session import TrainingSession
from ml.training import events as ev

EXIT_STOPPED = 3  # cxr train's exit status after a cancel (TrainingStopped)


@dataclass(frozen=True)
class RunButtons:
    start: bool
    start_text: str
    cancel: bool
    resume: bool


class RunProcess(Protocol):
    def is_running(self) -> bool: ...
    def start(self, run_dir: Path, config_path: Path | None = None, resume: bool = False) -> None: ...
    def cancel(self) -> None: ...


class RunView(Protocol):
    def show_message(self, text: str, error: bool = False) -> None: ...
    def show_run_folder(self, text: str) -> None: ...
    def show_buttons(self, buttons: RunButtons) -> None: ...
    def reset(self, tuning: bool) -> None: ...
    def append_log(self, line: str) -> None: ...
    def show_running(self, running: bool) -> None: ...
    def show_progress(self, fraction: float) -> None: ...
    def show_stats(self, text: str) -> None: ...
    def add_batch(self, epoch: int, batch: int, batches: int, loss: float | None) -> None: ...
    def add_epoch(self, record: dict[str, Any]) -> None: ...
    def clear_curves(self) -> None: ...
    def add_trial(self, cells: tuple[str, str, str]) -> None: ...
    def complete_changed(self) -> None: ...


def new_run_dir(config: Any) -> Path:
    from ml.training.runner import new_run_dir as make  # imports torch: only when a run starts

    return make(config)


def weights_phrase(weights: str) -> str:
    """How a run starts: "trained from scratch" unless it starts from pretrained or library weights."""
    if weights in ("", "none"):
        return "trained from scratch"
    if weights == "imagenet":
        return "fine-tuned from ImageNet weights"
    if weights == "xrv":
        return "fine-tuned from TorchXRayVision weights"
    return f"fine-tuned from {Path(weights).stem}"


def run_summary(config: Any) -> str:
    """The line the run page shows before Start: what will be trained, and how."""
    tune = f", auto-tune with {config.tune_trials} trials" if config.tune_trials else ""
    return (f"{config.arch} {weights_phrase(config.weights)}, {config.epochs} epoch(s), batch "
            f"{config.batch_size}, learning rate {config.lr:g}{tune}. Press Start training.")  # fmt: skip


def duration(seconds: float | None) -> str:
    return ev.duration(seconds)


class RunPresenter:
    def __init__(
        self,
        view: RunView,
        session: TrainingSession,
        process: RunProcess,
        make_run_dir: Callable[[Any], Path] = new_run_dir,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.view = view
        self.session = session
        self.process = process
        self.make_run_dir = make_run_dir
        self.clock = clock

    @property
    def run(self):  # noqa: ANN201 - the session's RunState
        return self.session.run

    @property
    def state(self) -> str:
        return self.run.state

    # ------------------------------------------------------------------ intent
    def page_shown(self) -> None:
        if self.state == "idle":
            self.view.show_message(run_summary(self.session.config))
        self._update()

    def start(self) -> None:
        """Write the config into a new run folder and start ``cxr train`` on it."""
        if self.process.is_running():
            return
        try:
            config = self.session.build_config()
            run_dir = self.make_run_dir(config)
            run_dir.mkdir(parents=True)
            config.save(run_dir / "config.json")
        except Exception as exc:  # noqa: BLE001 - ConfigError/OSError: readable on the page
            self.view.show_message(str(exc), error=True)
            return
        self.session.new_run(run_dir)
        self.view.reset(tuning=bool(config.tune_trials))
        self._launch(run_dir / "config.json", resume=False)

    def resume(self) -> None:
        if self.run.run_dir is None or self.process.is_running() or not self._resumable():
            return
        self.view.append_log("— resuming —")
        self._launch(None, resume=True)

    def _launch(self, config_path: Path | None, resume: bool) -> None:
        run = self.run
        run.exit_code = None
        run.started_at = self.clock()
        self.session.set_run_state("running")
        self.view.show_run_folder(f"Run folder: {run.run_dir}")
        self.view.show_message("Starting the training process (loading PyTorch)…")
        self.view.show_running(True)
        self.process.start(run.run_dir, config_path, resume)
        self._update()

    def cancel(self) -> None:
        if not self.process.is_running() or self.state != "running":
            return
        self.process.cancel()
        self.session.set_run_state("stopping")
        self.view.show_message("Stopping after the current batch (saving a checkpoint)…")
        self._update()

    def _resumable(self) -> bool:
        run_dir = self.run.run_dir
        return run_dir is not None and (run_dir / "config.json").is_file()

    def buttons(self) -> RunButtons:
        running = self.process.is_running()
        return RunButtons(
            start=not running,
            start_text="Start a new run" if self.run.run_dir is not None else "Start training",
            cancel=running and self.state == "running",
            resume=not running and self.state in ("stopped", "failed") and self._resumable(),
        )

    def _update(self) -> None:
        self.view.show_buttons(self.buttons())
        self.view.complete_changed()

    def is_complete(self) -> bool:
        return self.state == "finished"

    # ------------------------------------------------------------------ the process
    def process_finished(self, code: int, message: str) -> None:
        run = self.run
        run.exit_code = code
        self.view.show_running(False)
        if code == 0 and run.model_path is not None:
            took = duration(self.clock() - run.started_at) if run.started_at is not None else "–"
            self.session.set_run_state("finished")
            self.view.show_progress(1.0)
            self.view.show_message(f"Training finished in {took}. Press Next to see how well the model does "
                                   "on the test images.")  # fmt: skip
        elif code == EXIT_STOPPED:
            self.session.set_run_state("stopped")
            self.view.show_message(message)
        else:
            self.session.set_run_state("failed")
            self.view.show_message(message if code != 0 else "The training process ended without a model.",
                                   error=True)  # fmt: skip
            self.view.append_log(f"ERROR: {message}")
        self._update()

    def handle_events(self, events: Sequence[ev.Event]) -> None:
        for e in events:
            self.run.events.append(e.to_record())
            self._event(e)

    def _epochs(self) -> int:
        for prev in reversed(self.run.events):
            if prev.get("event") == "epoch_start" and prev.get("epochs"):
                return int(prev["epochs"])
        return int(self.session.config.epochs or 1)

    def _event(self, e: ev.Event) -> None:  # noqa: C901 - one branch per event type
        view = self.view
        if isinstance(e, ev.Start):
            view.append_log(ev.describe(e))
            view.show_message("Reading the images…")
        elif isinstance(e, (ev.CacheProgress, ev.EpochStart)):
            view.show_message(ev.describe(e))
        elif isinstance(e, ev.BatchDone):
            batches = max(int(e.batches or 1), 1)
            frac = ((e.epoch - 1) + e.batch / batches) / max(self._epochs(), 1)
            view.show_progress(min(1.0, max(0.0, frac)))
            view.add_batch(e.epoch, e.batch, batches, e.loss)
            view.show_stats(f"Epoch {e.epoch}/{self._epochs()} · " + ev.describe(e).split(" · ", 1)[1])
        elif isinstance(e, ev.EpochEnd):
            view.add_epoch(e.to_record())
            view.append_log(ev.describe(e))
        elif isinstance(e, ev.CheckpointSaved):
            if e.kind == "stop":
                view.append_log(ev.describe(e))
        elif isinstance(e, ev.Trial):
            params = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in e.params.items())
            result = e.state if e.value is None else f"{e.state} {e.value:.4f}"
            view.add_trial((str(e.number), str(result), params))
            view.append_log(ev.describe(e))
        elif isinstance(e, ev.TuneDone):
            view.append_log(ev.describe(e))
            view.clear_curves()
        elif isinstance(e, ev.Finished):
            self.run.model_path = Path(e.model_path) if e.model_path else None
            self.run.metrics_path = Path(e.metrics_path) if e.metrics_path else None
            view.append_log(ev.describe(e))
        elif not isinstance(e, ev.UnknownEvent):  # data, split, stopped, early stop, warning, error
            view.append_log(ev.describe(e))
