"""The run folder of a training run, seeding, stop requests and what a run returns.

Shared by :mod:`ml.training.runner` (which re-exports these names) and :mod:`ml.training.finish`.
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


class Stopper:
    """Stop requests: the STOP file in the run folder or a CancelToken; agreed across ranks."""

    def __init__(self, run_dir: Path, cancel: CancelToken | None, ctx: distributed.DistContext) -> None:
        self.path, self.cancel, self.ctx = run_dir / STOP_FILE, cancel, ctx

    def __call__(self) -> bool:
        local = self.path.exists() or bool(self.cancel and self.cancel.cancelled)
        return distributed.any_rank(self.ctx, local)
