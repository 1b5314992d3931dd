"""The training wizard's one model: everything the pages share, Qt-free (issue 7).

A :class:`TrainingSession` holds the scanned data, the split, the run and its evaluation. The pages'
presenters read and write it; nothing else does. Settings shown on the pages are gathered into one
:class:`ml.training.config.TrainConfig` by :meth:`TrainingSession.build_config`: each presenter
registers the function that writes its part (data source, split, model settings) into a config.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml.training.config import TrainConfig

ConfigPart = Callable[[TrainConfig], None]

RUN_STATES = ("idle", "running", "stopping", "stopped", "failed", "finished")


def choices(values: Sequence[str], texts: dict[str, str]) -> list[tuple[str, str]]:
    """(text, value) pairs for a combo box, in the order of a config choice list (a value without words
    is shown as itself)."""
    return [(texts.get(v, v), v) for v in values]


@dataclass
class RunState:
    """One training run: its folder, where it stands, and what it has reported so far."""

    state: str = "idle"  # one of RUN_STATES
    run_dir: Path | None = None
    exit_code: int | None = None
    model_path: Path | None = None
    metrics_path: Path | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    started_at: float | None = None  # clock value when the process was (re)started

    @property
    def active(self) -> bool:
        return self.state in ("running", "stopping")


@dataclass
class Evaluation:
    """The test-split metrics of the run and the library model saved from it."""

    metrics: dict[str, Any] | None = None
    saved_name: str | None = None
    saved_path: Path | None = None


@dataclass
class TrainingSession:
    #: ml.training.sources.LabelledSet of the last successful scan (None: not scanned / stale)
    data: Any = None
    #: ml.training.splits.Split of the current data and split settings (None: not computed / stale)
    split: Any = None
    #: the last validated configuration (what a run is started with)
    config: TrainConfig = field(default_factory=TrainConfig)
    run: RunState = field(default_factory=RunState)
    evaluation: Evaluation = field(default_factory=Evaluation)
    parts: list[ConfigPart] = field(default_factory=list, repr=False)

    # ------------------------------------------------------------------ changes
    def set_data(self, data: Any) -> None:
        """A new scan result (or None): the split computed from the old data no longer applies."""
        self.data = data
        self.split = None

    def set_split(self, split: Any) -> None:
        self.split = split

    def new_run(self, run_dir: Path) -> RunState:
        self.run = RunState(run_dir=Path(run_dir))
        self.evaluation = Evaluation()
        return self.run

    def set_run_state(self, state: str) -> None:
        if state not in RUN_STATES:
            raise ValueError(f"unknown run state {state!r}")
        self.run.state = state

    # ------------------------------------------------------------------ config
    def add_config_part(self, part: ConfigPart) -> None:
        self.parts.append(part)

    def draft_config(self) -> TrainConfig:
        """Every page's settings in one (not yet validated) config."""
        config = TrainConfig()
        for part in self.parts:
            part(config)
        return config

    def build_config(self) -> TrainConfig:
        """The validated config of what the pages show now (raises ConfigError with a readable line)."""
        self.config = self.draft_config().validate()
        return copy.deepcopy(self.config)
