"""The run folder of a training run, what every phase of a run receives (:class:`RunEnv`), seeding,
stop requests and what a run returns (:class:`TrainResult`).

Shared by the phases (:mod:`~ml.training.rundata`, :mod:`~ml.training.fit`, :mod:`~ml.training.finish`)
and :mod:`ml.training.runner`, which re-exports the public names.
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ml.errors import CxrError
from ml.progress import CancelToken
from ml.training import distributed
from ml.training.config import TrainConfig
from ml.training.events import EventWriter

STOP_FILE = "STOP"


class TrainingStopped(CxrError):
    """The run was cancelled; it saved a resumable checkpoint first."""

    exit_code = 3

    def __init__(self, run_dir: Path) -> None:
        super().__init__(f"Training stopped; resume with: cxr train --resume {run_dir}")
        self.run_dir = run_dir


@dataclass
class TrainResult:
    run_dir: Path
    model_path: Path | None
    metrics_path: Path | None
    metrics: dict[str, Any]
    best_epoch: int
    best_value: float | None
    installed_path: Path | None = None


class Stopper:
    """Stop requests: the STOP file in the run folder or a CancelToken; agreed across ranks."""

    def __init__(self, run_dir: Path, cancel: CancelToken | None, ctx: distributed.DistContext) -> None:
        self.path, self.cancel, self.ctx = run_dir / STOP_FILE, cancel, ctx

    def __call__(self) -> bool:
        local = self.path.exists() or bool(self.cancel and self.cancel.cancelled)
        return distributed.any_rank(self.ctx, local)


@dataclass(frozen=True)
class RunEnv:
    """What every phase of one run receives: built once by ``run_training``, never changed."""

    config: TrainConfig
    run_dir: Path
    ctx: distributed.DistContext
    events: EventWriter
    cancel: CancelToken | None = None
    #: continue from ``<run>/checkpoints/last.pt`` and the run's split.csv when they exist
    resume: bool = False

    @property
    def device(self) -> torch.device:
        return self.ctx.device

    @property
    def amp(self) -> bool:
        """Mixed precision: asked for, and on CUDA."""
        return bool(self.config.amp and self.ctx.device.type == "cuda")

    @property
    def is_main(self) -> bool:
        return self.ctx.is_main

    def stopper(self) -> Stopper:
        return Stopper(self.run_dir, self.cancel, self.ctx)


# --------------------------------------------------------------------------- helpers


def default_runs_dir() -> Path:
    from ml.logfile import user_data_dir

    return user_data_dir() / "runs"


def new_run_dir(config: TrainConfig, parent: Path | None = None) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", config.name or config.arch).strip("-") or "run"
    base = (parent or default_runs_dir()) / f"{stamp}-{slug}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
