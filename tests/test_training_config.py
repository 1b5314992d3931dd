"""The typed training config (one readable line for a wrong value) and the typed training events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml.cli import main as cxr
from ml.training import events as ev
from ml.training.config import (
    IMBALANCE_MODES,
    MONITORS,
    OPTIMIZERS,
    PRESET_CHOICES,
    SCHEDULERS,
    ConfigError,
    DataConfig,
    TrainConfig,
    architecture_choices,
)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"epochs": "10"}, "epochs must be an integer, got '10'"),
        ({"amp": "false"}, "amp must be true or false, got 'false'"),
        ({"data": {"path": "x", "frontal_only": 1}}, "data.frontal_only must be true or false, got 1"),
        ({"optimizer": "rmsprop"}, "optimizer must be one of 'adamw', 'adam' or 'sgd', got 'rmsprop'"),
        ({"split": {"ratios": [0, 1, 1]}}, "split.ratios must be three non-negative numbers with train > 0"),
        ({"epochs": 0}, "epochs must be at least 1, got 0"),
        ({"data": {"pth": "x"}}, "Unknown training setting 'data.pth'"),
    ],
)
def test_a_wrong_value_is_one_readable_config_error(setting: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict(setting)
    text = str(info.value)
    assert message in text and "\n" not in text, text


@pytest.mark.parametrize(("key", "value"), [("epochs", '"10"'), ("amp", '"false"')])
def test_cxr_train_with_a_mistyped_config_exits_with_one_line(
    tmp_path: Path, capsys, key: str, value: str
) -> None:
    config = tmp_path / "config.json"
    config.write_text(f'{{"data": {{"path": "{tmp_path}"}}, "{key}": {value}}}')
    code = cxr(["train", "--config", str(config), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert f"{key} must be" in err and value.strip('"') in err
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_a_value_assigned_later_is_checked_by_validate() -> None:
    config = TrainConfig(data=DataConfig(path="somewhere"))
    config.amp = "false"  # type: ignore[assignment] - what a careless caller might do
    with pytest.raises(ConfigError, match="amp must be true or false"):
        config.validate()
    config.amp = False
    config.arch = "no_such_net"
    with pytest.raises(ConfigError, match="arch must be one of .*cxr_resnet_small"):
        config.validate()


def test_round_trip_and_defaults_are_valid() -> None:
    config = TrainConfig(data=DataConfig(path="d", labels=["a", "b"]), epochs=3, normalisation={"mean": [0.5],
                         "std": [0.25]})  # fmt: skip
    again = TrainConfig.from_json(config.to_json())
    assert again == config and again.to_json() == config.to_json()
    assert json.loads(config.to_json())["normalisation"] == {"mean": [0.5], "std": [0.25]}
    assert TrainConfig(data=DataConfig(path="d")).validate().epochs == 10


def test_every_choice_the_wizard_offers_builds() -> None:
    """The exported choice lists are the values the trainer accepts (nothing listed that fails later)."""
    import torch

    from ml.training.build import build_optimizer, build_scheduler
    from ml.training.presets import PRESETS

    assert set(PRESET_CHOICES) == {"auto", *PRESETS}
    assert "cxr_resnet_small" in architecture_choices()
    params = [torch.nn.Parameter(torch.zeros(2))]
    for name in OPTIMIZERS:
        config = TrainConfig(optimizer=name)
        assert isinstance(build_optimizer(config, params), torch.optim.Optimizer)
    for name in SCHEDULERS:
        config = TrainConfig(scheduler=name)
        _, when = build_scheduler(config, build_optimizer(config, params), 4, "min")
        assert when in ("step", "epoch", "plateau", "none")
    for monitor in MONITORS:
        TrainConfig(monitor=monitor)
    for mode in IMBALANCE_MODES:
        TrainConfig(imbalance=mode)


# --------------------------------------------------------------------------- events


def test_events_round_trip_through_the_file_typed(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    seen: list[ev.Event] = []
    with ev.EventWriter(path, listeners=[seen.append]) as writer:
        writer.emit(ev.Start(run_dir="r", device="cpu", world_size=1, config={"epochs": 2}, resumed=False))
        writer.emit(ev.BatchDone(epoch=1, batch=3, batches=8, loss=0.5, images_per_s=12.0, eta_s=65))
        writer.emit(ev.EpochEnd(epoch=1, epochs=2, train_loss=0.4, val_loss=float("nan"), best=True))
        writer.emit(ev.CheckpointSaved(kind="stop", path="r/checkpoints/last.pt", epoch=2, batch=3))
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"event": "from_the_future", "x": 1}\n{"event": "batch", "epo')  # half-written last line
    events, offset = ev.read_events(path)
    assert [type(e) for e in events] == [
        ev.Start,
        ev.BatchDone,
        ev.EpochEnd,
        ev.CheckpointSaved,
        ev.UnknownEvent,
    ]
    assert events[1] == seen[1] and events[1].loss == 0.5 and events[1].elapsed >= 0
    assert events[2].val_loss is None  # NaN is written as null
    assert events[3].kind == "stop" and events[4].name == "from_the_future"
    assert offset < path.stat().st_size  # the half line is read next time
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('ch": 2, "batch": 1, "batches": 4, "surprise": true}\n')
    more, _ = ev.read_events(path, offset)
    assert more == [ev.BatchDone(time="", elapsed=0.0, epoch=2, batch=1, batches=4)]


def test_describe_says_what_happened() -> None:
    assert ev.describe(ev.BatchDone(epoch=2, batch=3, batches=8, loss=0.25, eta_s=75)) == (
        "Epoch 2 · batch 3/8 · loss 0.2500 · – images/s · about 1:15 left"
    )
    line = ev.describe(ev.EpochEnd(epoch=1, epochs=3, train_loss=0.5, val_auroc=0.91, best=True))
    assert line.startswith("Epoch 1/3: train loss 0.5000") and "val AUROC 0.910" in line and "best" in line
    stopped = ev.describe(ev.Stopped(checkpoint=str(Path("runs") / "r1" / "checkpoints" / "last.pt")))
    assert f"cxr train --resume {Path('runs') / 'r1'}" in stopped
    for cls in ev.EVENT_TYPES.values():  # every type has its sentence, even with default fields
        assert ev.describe(cls()) and not ev.describe(cls()).startswith("(")
    assert ev.describe(ev.parse_event('{"event": "new_kind"}')) == "(new_kind event)"


def test_config_and_events_load_without_torch() -> None:
    """The wizard imports both at start; torch (seconds to import) must wait until a run starts."""
    import subprocess
    import sys

    code = "import sys, ml.training.config, ml.training.events; print('torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert res.stdout.strip() == "False", res.stderr
