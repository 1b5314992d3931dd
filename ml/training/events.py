"""Training progress as typed events, written as JSON lines (one event per line, flushed as it happens).

Each event type is a frozen dataclass below; on disk it is a JSON object with ``event`` (the type's
name, :attr:`Event.event`), ``time`` (ISO 8601, local time) and ``elapsed`` (seconds since the
run started), plus the class's fields. The API, shared by ``cxr train`` and the wizard:

* ``EventWriter.emit(Epoch_end(...))`` appends one event (the runner);
* :func:`parse_event` turns one line (or an already decoded record) into its typed event: an
  unknown type becomes :class:`UnknownEvent`, unknown fields are ignored, missing ones take their
  defaults (readers of newer or older runs keep working);
* :func:`read_events` follows a growing events file (tolerates a half-written last line);
* :func:`describe` is the one human sentence for an event (CLI progress lines, the wizard's log).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, TextIO


@dataclass(frozen=True)
class Event:
    event: ClassVar[str] = ""
    time: str = ""
    elapsed: float = 0.0

    def payload(self) -> dict[str, Any]:
        """The event's own fields (without event, time, elapsed)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("time", "elapsed")}

    def to_record(self) -> dict[str, Any]:
        return {"event": self.event, "time": self.time, "elapsed": self.elapsed, **_clean(self.payload())}


@dataclass(frozen=True)
class Start(Event):
    event: ClassVar[str] = "start"
    run_dir: str = ""
    device: str = ""
    world_size: int = 1
    config: dict[str, Any] = field(default_factory=dict)  # the TrainConfig as a dict
    resumed: bool = False


@dataclass(frozen=True)
class DataRead(Event):
    event: ClassVar[str] = "data"
    report: dict[str, Any] = field(default_factory=dict)  # SourceReport.to_dict(): per_class, unreadable, ...


@dataclass(frozen=True)
class SplitMade(Event):
    event: ClassVar[str] = "split"
    summary: dict[str, Any] = field(default_factory=dict)  # Split.summary(): patients/images per split, class
    level: str = ""


@dataclass(frozen=True)
class CacheProgress(Event):
    event: ClassVar[str] = "cache"
    done: int = 0
    total: int = 0
    features: str | None = None  # head-only mode: which split's features were computed


@dataclass(frozen=True)
class EpochStart(Event):
    event: ClassVar[str] = "epoch_start"
    epoch: int = 0  # from 1
    epochs: int = 0
    lr: float = 0.0
    frozen_backbone: bool = False


@dataclass(frozen=True)
class BatchDone(Event):
    event: ClassVar[str] = "batch"
    epoch: int = 0
    batch: int = 0  # from 1
    batches: int = 0
    loss: float | None = None  # running mean over the epoch
    images_per_s: float | None = None
    eta_s: float | None = None


@dataclass(frozen=True)
class EpochEnd(Event):
    event: ClassVar[str] = "epoch_end"
    epoch: int = 0
    epochs: int = 0
    train_loss: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    val_auroc: float | None = None
    val_f1: float | None = None
    monitor: str = ""
    monitor_value: float | None = None
    best: bool = False
    early_stop: bool = False
    lr: float | None = None
    images_per_s: float | None = None
    seconds: float | None = None
    eta_s: float | None = None


@dataclass(frozen=True)
class CheckpointSaved(Event):
    event: ClassVar[str] = "checkpoint"
    kind: str = ""  # last | best | stop | periodic
    path: str = ""
    epoch: int = 0
    batch: int = 0


@dataclass(frozen=True)
class Stopped(Event):
    event: ClassVar[str] = "stopped"
    reason: str = "cancelled"
    checkpoint: str = ""  # resumable: cxr train --resume RUN_DIR


@dataclass(frozen=True)
class EarlyStop(Event):
    event: ClassVar[str] = "early_stop"
    epoch: int = 0
    monitor: str = ""
    best_value: float | None = None
    patience: int = 0


@dataclass(frozen=True)
class Trial(Event):
    event: ClassVar[str] = "trial"
    number: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    value: float | None = None
    state: str = ""  # Optuna: COMPLETE | PRUNED | FAIL


@dataclass(frozen=True)
class TuneDone(Event):
    event: ClassVar[str] = "tune_done"
    best_params: dict[str, Any] = field(default_factory=dict)
    best_value: float | None = None
    trials: int = 0


@dataclass(frozen=True)
class Finished(Event):
    event: ClassVar[str] = "finished"
    model_path: str = ""
    metrics_path: str = ""
    split_path: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)  # test summary (ml.training.metrics.summary)
    installed: str | None = None


@dataclass(frozen=True)
class WarningEvent(Event):
    event: ClassVar[str] = "warning"
    message: str = ""


@dataclass(frozen=True)
class ErrorEvent(Event):
    event: ClassVar[str] = "error"
    message: str = ""
    kind: str = ""  # the exception class


@dataclass(frozen=True)
class UnknownEvent(Event):
    """An event type this version does not know (a newer writer): kept, described by its name."""

    name: str = ""
    fields_: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return {"event": self.name, "time": self.time, "elapsed": self.elapsed, **self.fields_}


#: event name -> class (every event type above)
EVENT_TYPES: dict[str, type[Event]] = {
    cls.event: cls
    for cls in (Start, DataRead, SplitMade, CacheProgress, EpochStart, BatchDone, EpochEnd, CheckpointSaved,
                Stopped, EarlyStop, Trial, TuneDone, Finished, WarningEvent, ErrorEvent)
}  # fmt: skip


# --------------------------------------------------------------------------- parsing


def parse_event(line: str | bytes | dict[str, Any]) -> Event:
    """One JSON line (or its decoded object) as its typed event. Raises ValueError on bad JSON."""
    record = json.loads(line) if isinstance(line, (str, bytes)) else line
    if not isinstance(record, dict):
        raise ValueError("an event must be a JSON object")
    name = str(record.get("event", ""))
    stamp, elapsed = str(record.get("time", "")), float(record.get("elapsed") or 0.0)
    cls = EVENT_TYPES.get(name)
    if cls is None:
        rest = {k: v for k, v in record.items() if k not in ("event", "time", "elapsed")}
        return UnknownEvent(time=stamp, elapsed=elapsed, name=name, fields_=rest)
    known = {f.name for f in fields(cls)} - {"time", "elapsed"}
    return cls(time=stamp, elapsed=elapsed, **{k: v for k, v in record.items() if k in known})


def read_events(path: str | os.PathLike[str], offset: int = 0) -> tuple[list[Event], int]:
    """Complete events from byte ``offset`` on, and the offset to continue from (for following a run)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return [], offset
    events: list[Event] = []
    consumed = 0
    for raw in data.splitlines(keepends=True):
        if not raw.endswith(b"\n"):
            break  # a line still being written
        consumed += len(raw)
        try:
            events.append(parse_event(raw))
        except (ValueError, TypeError):
            continue
    return events, offset + consumed


# --------------------------------------------------------------------------- writing


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class EventWriter:
    """Append events to ``path`` (JSON lines) and/or ``stream`` and hand them to ``listeners``;
    a disabled writer (a non-main torchrun rank) does nothing."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        stream: TextIO | None = None,
        enabled: bool = True,
        listeners: list[Callable[[Event], None]] | None = None,
    ) -> None:
        self.path = Path(path) if path else None
        self.stream = stream
        self.listeners = list(listeners or [])
        self.enabled = enabled
        self.t0 = time.monotonic()
        self._fh: TextIO | None = None
        if self.enabled and self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run

    def emit(self, event: Event) -> Event:
        stamped = replace(
            event,
            time=datetime.now().isoformat(timespec="milliseconds"),
            elapsed=round(time.monotonic() - self.t0, 3),
        )
        if not self.enabled:
            return stamped
        line = json.dumps(stamped.to_record(), default=str, allow_nan=False)
        for fh in (self._fh, self.stream):
            if fh is not None:
                fh.write(line + "\n")
                fh.flush()
        for listener in self.listeners:
            listener(stamped)
        return stamped

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stdout_writer(path: str | os.PathLike[str] | None = None) -> EventWriter:
    return EventWriter(path, sys.stdout)


# --------------------------------------------------------------------------- one sentence per event


def _f(value: float | None, fmt: str = "{:.4f}") -> str:
    return "–" if value is None else fmt.format(value)


def duration(seconds: float | None) -> str:
    """``m:ss`` or ``h:mm:ss`` ("–" when unknown)."""
    if seconds is None:
        return "–"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _split_line(summary: dict[str, Any]) -> str:
    sp = summary.get("splits") or {}
    return ", ".join(
        f"{k} {sp[k]['images']} images / {sp[k]['patients']} patients"
        for k in ("train", "val", "test")
        if k in sp
    )


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in params.items())


def describe(e: Event) -> str:
    """The one human sentence for an event (``cxr train``'s progress lines, the wizard's run log)."""
    if isinstance(e, Start):
        what = "Resumed" if e.resumed else "Started"
        return f"{what} on {e.device} ({e.world_size} process(es)); run folder {e.run_dir}."
    if isinstance(e, DataRead):
        counts = ", ".join(f"{k} {v}" for k, v in (e.report.get("per_class") or {}).items())
        return f"Data: {e.report.get('n_images')} images ({counts})."
    if isinstance(e, SplitMade):
        return f"Split ({e.level} level): {_split_line(e.summary)}."
    if isinstance(e, CacheProgress):
        if e.features:
            return f"Features of the {e.features} images computed ({e.total})."
        return f"Preparing images: {e.done} of {e.total} (decoded once, then cached)…"
    if isinstance(e, EpochStart):
        frozen = " (backbone frozen)" if e.frozen_backbone else ""
        return f"Epoch {e.epoch} of {e.epochs}{frozen}, learning rate {e.lr:.2e}"
    if isinstance(e, BatchDone):
        return (
            f"Epoch {e.epoch} · batch {e.batch}/{e.batches} · loss {_f(e.loss)} · "
            f"{_f(e.images_per_s, '{:.1f}')} images/s · about {duration(e.eta_s)} left"
        )
    if isinstance(e, EpochEnd):
        parts = [f"Epoch {e.epoch}/{e.epochs}: train loss {_f(e.train_loss)}", f"val loss {_f(e.val_loss)}",
                 f"val accuracy {_f(e.val_accuracy, '{:.3f}')}", f"val AUROC {_f(e.val_auroc, '{:.3f}')}",
                 f"{_f(e.images_per_s, '{:.1f}')} images/s"]  # fmt: skip
        return ", ".join(parts) + ("  ★ best so far" if e.best else "")
    if isinstance(e, CheckpointSaved):
        return f"Checkpoint ({e.kind}) saved at epoch {e.epoch}, batch {e.batch}."
    if isinstance(e, Stopped):
        run = Path(e.checkpoint).parent.parent if e.checkpoint else "RUN_FOLDER"
        return f"Stopped on request; resume with: cxr train --resume {run}"
    if isinstance(e, EarlyStop):
        return (
            f"Early stop after epoch {e.epoch}: {e.monitor} did not improve for {e.patience} epochs "
            f"(best {_f(e.best_value)})."
        )
    if isinstance(e, Trial):
        result = e.state if e.value is None else f"{e.state} {e.value:.4f}"
        return f"Auto-tune trial {e.number}: {result} ({_params(e.params)})"
    if isinstance(e, TuneDone):
        return f"Auto-tune done after {e.trials} trials; training with the best settings: {_params(e.best_params)}."
    if isinstance(e, Finished):
        m = e.metrics
        return (
            f"Finished: test accuracy {_f(m.get('accuracy'), '{:.3f}')}, "
            f"macro AUROC {_f(m.get('macro_auroc'), '{:.3f}')}. Model: {e.model_path}"
        )
    if isinstance(e, WarningEvent):
        return f"Note: {e.message}"
    if isinstance(e, ErrorEvent):
        return f"ERROR: {e.message}"
    if isinstance(e, UnknownEvent):
        return f"({e.name} event)"
    return f"({e.event} event)"
