"""The command lines of a training run, Qt-free: ``cxr train`` for the wizard's process, torchrun for a server."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any


def cxr_program() -> tuple[str, list[str]]:
    """The program and leading arguments that run the ``cxr`` command line."""
    if getattr(sys, "frozen", False):  # PyInstaller: the application's own executable takes `train ...`
        return sys.executable, []
    return sys.executable, ["-m", "ml"]


def train_arguments(run_dir: Path, config_path: Path | None = None, resume: bool = False) -> list[str]:
    """Arguments of ``cxr train`` for a new run (``config_path``) or a resumed one."""
    events = str(run_dir / "events.jsonl")
    if resume:
        return ["train", "--resume", str(run_dir), "--events", events, "--quiet"]
    if config_path is None:
        raise ValueError("a new run needs its config file")
    return ["train", "--config", str(config_path), "--out", str(run_dir), "--events", events, "--quiet"]


def torchrun_command(config_file: str | os.PathLike[str], out_dir: str, nproc: int = 1) -> str:
    """The exact command that runs the same training on a GPU server with torchrun."""
    return (
        f"torchrun --nproc_per_node={int(nproc)} -m ml train --config {shlex.quote(str(config_file))} "
        f"--out {shlex.quote(out_dir)}"
    )


def export_config(config: Any, folder: str | os.PathLike[str], nproc: int = 1) -> tuple[Path, str]:
    """Write ``folder/config.json`` (atomically) and return it with the torchrun command line."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    config.save(path)
    return path, torchrun_command("config.json", "runs/" + (config.name or config.arch), nproc)


def repo_root() -> str:
    import ml

    return str(Path(ml.__file__).resolve().parents[1])
