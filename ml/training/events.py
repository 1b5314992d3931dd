"""Training progress as JSON lines: one event per line, appended and flushed as it happens.

Every event is a JSON object with ``event`` (its type), ``time`` (ISO 8601, local time) and
``elapsed`` (seconds since the run started), plus the fields of its type:

=============  ================================================================================
event          fields
=============  ================================================================================
start          run_dir, device, world_size, config (the TrainConfig as a dict), resumed
data           report (SourceReport as a dict: per_class, unreadable, duplicates, filtered, ...)
split          summary (patients/images per split and class), level
cache          done, total (decoding into the per-run cache), failed
epoch_start    epoch (from 1), epochs, lr, frozen_backbone
batch          epoch, batch (from 1), batches, loss (running mean), images_per_s, eta_s
epoch_end      epoch, epochs, train_loss, val_loss, val_accuracy, val_auroc, val_f1, monitor,
               monitor_value, best (bool), lr, images_per_s, seconds, eta_s
checkpoint     kind (last | best | stop), path, epoch, batch
stopped        reason ("cancelled"), checkpoint (resumable; ``cxr train --resume RUN_DIR``)
early_stop     epoch, monitor, best_value, patience
trial          number, params, value, state (Optuna auto-tune: COMPLETE | PRUNED | FAIL)
tune_done      best_params, best_value, trials
finished       model_path, metrics_path, split_path, metrics (test summary), installed
warning        message
error          message, kind (the exception class)
=============  ================================================================================

Readers (the wizard) should ignore unknown event types and fields; :func:`read_events` tolerates a
half-written last line.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class EventWriter:
    """Append events to ``path`` (JSON lines) and/or ``stream``; a disabled writer does nothing."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        stream: TextIO | None = None,
        enabled: bool = True,
        listeners: list[Callable[[dict[str, Any]], None]] | None = None,
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

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        record = {
            "event": event,
            "time": datetime.now().isoformat(timespec="milliseconds"),
            "elapsed": round(time.monotonic() - self.t0, 3),
        }
        record.update(_clean(fields))
        if not self.enabled:
            return record
        line = json.dumps(record, default=str, allow_nan=False)
        for fh in (self._fh, self.stream):
            if fh is not None:
                fh.write(line + "\n")
                fh.flush()
        for listener in self.listeners:
            listener(record)
        return record

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


def read_events(path: str | os.PathLike[str], offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Complete events from byte ``offset`` on, and the offset to continue from (for following a run)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return [], offset
    events: list[dict[str, Any]] = []
    consumed = 0
    for raw in data.splitlines(keepends=True):
        if not raw.endswith(b"\n"):
            break  # a line still being written
        consumed += len(raw)
        try:
            events.append(json.loads(raw))
        except json.JSONDecodeError:
            continue
    return events, offset + consumed
