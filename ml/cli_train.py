"""`cxr train` and `cxr evaluate`. Not for diagnostic use.

``cxr train`` builds a TrainConfig from ``--config FILE`` and/or the options (options win), runs it
(or resumes a run folder), prints progress lines on stderr (or JSON-lines events with
``--events -``), and prints the model path on stdout. A cancelled run exits with status 3.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml.cli import subcommand
from ml.errors import DataSourceError

if TYPE_CHECKING:
    from ml.training.events import Event


@subcommand
def _register(sub: argparse._SubParsersAction) -> None:
    from ml.training.config import PRESET_CHOICES  # torch-free

    p = sub.add_parser("train", help="train or fine-tune a model on a labelled folder or CSV")
    p.add_argument("--data", help="folder (one sub-folder per class, or a known dataset) or CSV file")
    p.add_argument("--config", help="JSON training configuration (options given here override it)")
    p.add_argument("--preset", help=", ".join(PRESET_CHOICES))
    p.add_argument("--arch", help="architecture from the registry (default cxr_resnet_small)")
    p.add_argument("--weights", help="imagenet | xrv | none | MODEL (a model file or installed name)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--image-size", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--workers", type=int, help="data-loading worker processes")
    p.add_argument("--split", help="train,val,test ratios, e.g. 70,15,15")
    p.add_argument(
        "--patient-id",
        help="auto | dicom | none | regex:PATTERN (file name) | path-regex:PATTERN | column:NAME",
    )
    p.add_argument("--head-only", action="store_true", default=None, help="train only the classifier head")
    p.add_argument("--target-sensitivity", type=float, metavar="S",
                   help="operating point chosen on validation: the highest threshold reaching sensitivity S "
                        "(default: Youden for two classes, F1-optimal per label for multi-label)")  # fmt: skip
    p.add_argument("--tune", type=int, metavar="N", help="Optuna auto-tune: N trials before the final run")
    p.add_argument("--install", action="store_true", default=None, help="install the model into the library")
    p.add_argument("--out", help="run folder (default: a new folder under the user data folder's runs/)")
    p.add_argument("--resume", metavar="DIR", help="continue a cancelled or interrupted run folder")
    p.add_argument("--device", help="auto | cpu | cuda")
    p.add_argument("--events", help="also write JSON-lines events to FILE ('-': to stdout)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="metrics of a model on a labelled folder or CSV")
    p.add_argument("--model", help="model file or installed model name (default: the default model)")
    p.add_argument("--data", required=True, help="labelled folder or CSV (same forms as cxr train)")
    p.add_argument("--preset", default="auto")
    p.add_argument("--out", help="folder for metrics.json (default: a new folder under evaluations/)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto")
    p.add_argument("--patient-id", default="auto", help="patients for the bootstrap confidence intervals")
    p.add_argument("--bootstrap", type=int, default=200)
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=cmd_evaluate)


# --------------------------------------------------------------------------- train


def config_from_args(args: argparse.Namespace) -> Any:
    from ml.training.config import TrainConfig, parse_ratios

    config = TrainConfig.load(args.config) if args.config else TrainConfig()
    if args.data:
        config.data.path = args.data
    if args.preset:
        config.data.preset = args.preset
    if args.split:
        config.split.ratios = parse_ratios(args.split)
    if args.patient_id:
        config.split.patient_id = args.patient_id
    for opt, attr in (("arch", "arch"), ("weights", "weights"), ("epochs", "epochs"), ("image_size", "image_size"),
                      ("batch_size", "batch_size"), ("lr", "lr"), ("seed", "seed"), ("workers", "workers"),
                      ("device", "device"), ("head_only", "head_only"), ("install", "install"),
                      ("tune", "tune_trials"), ("target_sensitivity", "target_sensitivity")):  # fmt: skip
        value = getattr(args, opt)
        if value is not None:
            setattr(config, attr, value)
    return config


def _progress_printer(quiet: bool) -> Callable[[Event], None]:
    """Progress lines on stderr: the :func:`describe` sentence of the events worth a line (not every
    batch); the start line waits for the split, so that a data error stays the only line."""
    from ml.training import events as ev

    shown = (ev.SplitMade, ev.EpochEnd, ev.Trial, ev.TuneDone, ev.WarningEvent, ev.EarlyStop, ev.Stopped)
    pending: list[str] = []

    def show(e: Event) -> None:
        if quiet and not isinstance(e, ev.WarningEvent):
            return
        if isinstance(e, ev.Start):
            pending.append(ev.describe(e))
        elif isinstance(e, shown):
            lines = [*pending, ev.describe(e)] if isinstance(e, ev.SplitMade) else [ev.describe(e)]
            if isinstance(e, ev.SplitMade):
                pending.clear()
            for line in lines:
                print(line, file=sys.stderr, flush=True)

    return show


def cmd_train(args: argparse.Namespace) -> int:
    from ml.training.config import TrainConfig
    from ml.training.runner import run_training

    run_dir: Path | None
    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / "config.json").is_file():
            raise DataSourceError(f"{run_dir} is not a training run folder (it has no config.json).")
        config = TrainConfig.load(run_dir / "config.json")
        if args.device:
            config.device = args.device
        resume = True
    else:
        config = config_from_args(args)
        if not config.data.path:
            raise DataSourceError("No data source: give --data FOLDER_OR_CSV (or a --config that names one).")
        run_dir = Path(args.out) if args.out else None
        resume = False
    stream = sys.stdout if args.events == "-" else None
    events_file = args.events if args.events and args.events != "-" else None
    listeners = [_progress_printer(args.quiet or stream is not None)]
    if config.tune_trials and not resume:
        from ml.training.tune import tune_and_train

        result = tune_and_train(
            config, run_dir, events_path=events_file, event_stream=stream, listeners=listeners
        )
    else:
        result = run_training(
            config, run_dir, resume=resume, events_path=events_file, event_stream=stream, listeners=listeners
        )
    if result.model_path is not None:
        if stream is None:
            from ml.training.metrics import format_table

            m = result.metrics
            table = {
                **m["test"],
                "calibration": m.get("calibration"),
                "operating_point": m.get("operating_point"),
            }
            print(format_table(table), file=sys.stderr)
            print(result.model_path)
    return 0


# --------------------------------------------------------------------------- evaluate


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ml.fileio import write_text_atomic  # noqa: F401 - atomic writes below via write_metrics
    from ml.logfile import user_data_dir
    from ml.models.library import resolve_default_model, resolve_model
    from ml.training.evaluate import evaluate_model
    from ml.training.metrics import format_table, write_metrics

    model_path = resolve_model(args.model) if args.model else resolve_default_model()
    metrics = evaluate_model(
        model_path,
        args.data,
        preset=args.preset,
        batch_size=args.batch_size,
        device=args.device,
        patient_id=args.patient_id,
        n_boot=args.bootstrap,
    )
    out = (
        Path(args.out)
        if args.out
        else (user_data_dir() / "evaluations" / f"{datetime.now():%Y%m%d-%H%M%S}-{model_path.stem}")
    )
    out.mkdir(parents=True, exist_ok=True)
    write_metrics(out / "metrics.json", metrics)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        print(format_table(metrics))
        print(f"metrics written to {out / 'metrics.json'}")
    return 0
