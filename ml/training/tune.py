"""Optuna auto-tune: N short trials over learning rate, weight decay and augmentation strength
(median pruning on the validation metric), then a full run with the best settings.

Trials run in ``<run>/trials/NNN`` and share the run's decoded cache (same preprocessing); each
trial is reported as a ``trial`` event (the wizard's trials table), then ``tune_done``. Optuna is an
optional dependency: without it, asking for a tune is a clear error. Single-process only.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ml.errors import CxrError
from ml.training import distributed
from ml.training.config import TrainConfig
from ml.training.events import Event, EventWriter, Trial, TuneDone
from ml.training.fit import monitor_of
from ml.training.runner import TrainResult, new_run_dir, run_training


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise CxrError("Auto-tune needs the optional package 'optuna' (pip install optuna).") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def suggest(trial: Any, base: TrainConfig) -> TrainConfig:
    config = copy.deepcopy(base)
    config.lr = trial.suggest_float("lr", base.lr / 10, base.lr * 10, log=True)
    config.weight_decay = trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)
    config.augment.strength = trial.suggest_float("augment_strength", 0.0, 2.0)
    config.epochs = base.tune_epochs or base.epochs
    config.tune_trials = 0
    config.install = False
    return config


def tune_and_train(
    config: TrainConfig,
    run_dir: str | os.PathLike[str] | None = None,
    *,
    events_path: str | os.PathLike[str] | None = None,
    event_stream: Any = None,
    listeners: list[Callable[[Event], None]] | None = None,
) -> TrainResult:
    """Run ``config.tune_trials`` trials, then the final training with the best parameters."""
    optuna = _optuna()
    config.validate()
    if distributed.env_world_size() > 1:
        raise CxrError("Auto-tune runs in one process; start it without torchrun.")
    run = Path(run_dir) if run_dir else new_run_dir(config)
    run.mkdir(parents=True, exist_ok=True)
    log = EventWriter(events_path or run / "events.jsonl", event_stream, listeners=listeners)
    _, mode = monitor_of(config)
    study = optuna.create_study(
        direction="minimize" if mode == "min" else "maximize",
        sampler=optuna.samplers.TPESampler(seed=config.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    )

    def objective(trial: Any) -> float:
        trial_config = suggest(trial, config)

        def report(epoch: int, value: float | None) -> None:
            if value is None:
                return
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        result = run_training(
            trial_config,
            run / "trials" / f"{trial.number:03d}",
            cache_dir=run / "cache",
            on_epoch=report,
            final=False,
        )
        if result.best_value is None:
            raise optuna.TrialPruned()
        return float(result.best_value)

    def on_trial(study_: Any, trial: Any) -> None:
        log.emit(Trial(number=trial.number, params=trial.params, value=trial.value, state=trial.state.name))

    study.optimize(objective, n_trials=config.tune_trials, callbacks=[on_trial], catch=())
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    if not done:
        raise CxrError("Every auto-tune trial was pruned or failed; train without auto-tune.")
    best = study.best_params
    log.emit(TuneDone(best_params=best, best_value=study.best_value, trials=len(study.trials)))
    log.close()
    final = copy.deepcopy(config)
    final.lr, final.weight_decay, final.augment.strength = (
        best["lr"],
        best["weight_decay"],
        best["augment_strength"],
    )
    final.tune_trials = 0
    return run_training(
        final,
        run,
        events_path=events_path,
        event_stream=event_stream,
        listeners=listeners,
        cache_dir=run / "cache",
    )
