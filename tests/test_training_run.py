"""End-to-end training runs: real JPEGs, phantoms, cancel/resume, SIGKILL/resume, torchrun, evaluate,
bad inputs. Tiny images and the compact architecture keep each run to seconds on a 2-core CPU."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ml.cli import main as cxr
from ml.imaging.read import read_image
from ml.inference.preprocess import prepare
from ml.models.bundle import load_model, read_manifest
from ml.training.config import AugmentConfig, DataConfig, SplitConfig, TrainConfig
from ml.training.dataset import DecodedCache, XrayDataset
from ml.training.events import Event, read_events
from ml.training.runner import TrainingStopped, run_training
from ml.training.sources import load_folder
from tests.helpers.phantoms import write_phantom_folder

REPO = Path(__file__).resolve().parents[1]
#: the project's compact CNN, trained from scratch on the CPU (BatchNorm statistics recomputed after
#: each epoch by the trainer).
PHANTOM_ARCH = "cxr_resnet_small"


def folder_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def small_config(data: Path, **kw) -> TrainConfig:
    base = dict(
        data=DataConfig(path=str(data)),
        image_size=64,
        batch_size=8,
        epochs=2,
        lr=3e-3,
        bootstrap=20,
        augment=AugmentConfig(
            rotation=5, translate=0.03, scale=0.05, shear=0, brightness=0.05, contrast=0.05
        ),
    )
    base.update(kw)
    return TrainConfig(**base)


def learning(history: list[dict]) -> list[dict]:
    """Epoch results without the wall-clock timings."""
    return [{k: v for k, v in row.items() if k not in ("seconds", "images_per_s")} for row in history]


def run_cxr(*args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ml", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        check=False,
        env=env,
        **kw,
    )


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("phantoms")
    write_phantom_folder(root, n_per_class=24, fmt="png", seed=5)
    return root


# --------------------------------------------------------------------------- real files


def test_kermany_end_to_end_cli(shared_data: Path, tmp_path: Path, capsys) -> None:
    """`cxr train` on 16 real paediatric JPEGs: model, metrics and split are written; images untouched."""
    source = shared_data / "cxr" / "kermany-val"
    before = folder_hashes(source)
    out = tmp_path / "run"
    code = cxr(
        [
            "train",
            "--data",
            str(source),
            "--epochs",
            "2",
            "--image-size",
            "64",
            "--batch-size",
            "4",
            "--out",
            str(out),
            "--seed",
            "1",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.strip() == str(out / "model.safetensors")
    model, manifest = load_model(out / "model.safetensors")
    assert manifest.labels == ["NORMAL", "PNEUMONIA"] and manifest.input_size == 64
    assert manifest.provenance.split.startswith("patient-level split")
    assert manifest.provenance.extra["config"]["epochs"] == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["n_images"] >= 2 and set(metrics["test"]["per_class"]) == {"NORMAL", "PNEUMONIA"}
    # post-hoc calibration on the validation split only: temperature and Youden point in the manifest
    calib, op = metrics["calibration"], metrics["operating_point"]
    assert calib["split"] == "validation" and manifest.temperature == pytest.approx(calib["temperature"])
    assert calib["ece_before"] is not None and calib["test"]["split"] == "test"
    assert op["split"] == "validation" and op["rule"] == "Youden's J"
    assert manifest.thresholds == {"PNEUMONIA": op["threshold"]}
    assert f"threshold {op['threshold']:.3f}" in op["text"]
    with open(out / "split.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 16 and {r["split"] for r in rows} == {"train", "val", "test"}
    splits_of: dict[str, set[str]] = {}
    for r in rows:
        splits_of.setdefault(r["patient"], set()).add(r["split"])
    assert len(splits_of) < len(rows)  # some patients have several images...
    assert all(len(s) == 1 for s in splits_of.values())  # ...and each patient is in one split only
    assert {r["patient"] for r in rows if "person1946" in r["path"]} == {
        "person1946"
    }  # two images, one patient
    assert (out / "config.json").is_file() and (out / "checkpoints" / "best.pt").is_file()
    events = read_events(out / "events.jsonl")[0]
    kinds = [e.event for e in events]
    assert kinds[0] == "start" and kinds[-1] == "finished" and kinds.count("epoch_end") == 2
    assert folder_hashes(source) == before  # the user's images are byte-for-byte unchanged

    # `cxr evaluate` on the same labelled folder prints and writes the metrics
    code = cxr(
        [
            "evaluate",
            "--model",
            str(out / "model.safetensors"),
            "--data",
            str(source),
            "--out",
            str(tmp_path / "eval"),
            "--bootstrap",
            "20",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "16 images" in printed and "PNEUMONIA" in printed and "auroc" in printed
    assert "ECE on this data" in printed and f"threshold {op['threshold']:.3f} on P(PNEUMONIA)" in printed
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert evaluated["n_images"] == 16 and evaluated["accuracy"] is not None


def test_training_input_is_the_inference_input(shared_data: Path, tmp_path: Path) -> None:
    """Without augmentation the Dataset yields exactly preprocess.prepare()'s tensor, from the cache."""
    data = load_folder(shared_data / "cxr" / "kermany-val")
    from ml.models.manifest import ModelManifest

    manifest = ModelManifest(
        name="t", architecture="cxr_resnet_small", labels=data.labels, input_size=64, channels=1
    )

    class CountingCache(DecodedCache):
        decoded = 0

        def decode(self, sample):  # noqa: ANN001, ANN201
            CountingCache.decoded += 1
            return super().decode(sample)

    cache = CountingCache(tmp_path / "cache", manifest)
    ds = XrayDataset(data.samples[:4], data.labels, "multiclass", cache)
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            x, y, _ = ds[i]
            expected, _ = prepare(read_image(data.samples[i].path), 0, manifest)
            assert torch.equal(x, torch.from_numpy(expected))
    assert CountingCache.decoded == 4  # decoded once; later epochs read the cache


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("empty", "is empty"),
        ("flat", "No class sub-folders found"),
        ("csv", "has no path column"),
        ("one_class", "Only one class"),
    ],
)
def test_bad_inputs_exit_non_zero_with_one_line(tmp_path: Path, capsys, setup: str, message: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    if setup == "flat":
        write_phantom_folder(tmp_path / "x", n_per_class=1, fmt="png")
        (tmp_path / "x" / "lesion" / "lesion_000.png").rename(data / "a.png")
    elif setup == "csv":
        data = tmp_path / "labels.csv"
        data.write_text("image_name,label\na.png,x\n")
    elif setup == "one_class":
        write_phantom_folder(data, n_per_class=2, fmt="png")
        for p in (data / "normal").iterdir():
            p.unlink()
        (data / "normal").rmdir()
    code = cxr(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("cxr: error: ") and err.count("\n") == 1 and message in err, err


# --------------------------------------------------------------------------- phantoms


def test_cancel_with_stop_file_then_resume_equals_uninterrupted(phantoms: Path, tmp_path: Path) -> None:
    config = small_config(phantoms, epochs=3, batch_size=4)
    straight = run_training(config, tmp_path / "straight")

    run_dir = tmp_path / "stopped"

    def stop_in_epoch_two(event: Event) -> None:
        # batch events are throttled (first, last, and every 0.2 s): the first one of epoch 2 is sure
        if event.event == "batch" and event.epoch == 2 and event.batch < event.batches:
            (run_dir / "STOP").touch()

    with pytest.raises(TrainingStopped, match="resume with: cxr train --resume"):
        run_training(config, run_dir, listeners=[stop_in_epoch_two])
    events = read_events(run_dir / "events.jsonl")[0]
    stop = [e for e in events if e.event == "checkpoint" and e.kind == "stop"]
    assert stop and stop[0].epoch == 2 and 1 <= stop[0].batch < 8
    assert not (run_dir / "model.safetensors").exists()

    resumed = run_training(config, run_dir, resume=True)
    assert resumed.metrics["test"] == straight.metrics["test"]
    assert learning(resumed.metrics["history"]) == learning(straight.metrics["history"])
    a = load_model(straight.model_path)[0].state_dict()
    b = load_model(resumed.model_path)[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_head_only_and_multilabel_csv(phantoms: Path, tmp_path: Path) -> None:
    # a multi-label CSV over the phantom PNGs: "lesion" plus a second label
    rows = ["path,lesion,big"]
    for p in sorted(phantoms.rglob("*.png")):
        rows.append(f"{p},{int(p.parent.name == 'lesion')},{int(p.stat().st_size % 2)}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    config = small_config(
        tmp_path / "labels.csv",
        head_only=True,
        epochs=2,
        imbalance="pos_weight",
        split=SplitConfig(patient_id="none"),
    )
    result = run_training(config, tmp_path / "run")
    manifest = read_manifest(result.model_path)
    assert manifest.task == "multilabel" and manifest.labels == ["lesion", "big"]
    assert set(manifest.thresholds) == {"lesion", "big"}
    assert set(result.metrics["test"]["confusion_matrix"]) == {"lesion", "big"}


def test_head_only_returns_its_head_and_training_it_leaves_the_backbone(phantoms: Path, tmp_path: Path) -> None:
    """The phases as data flow: head-only mode hands back the head, an optimiser over the head alone and
    feature loaders; fitting them changes the head's weights and nothing else of the model file's network."""
    from ml.models import registry
    from ml.training import build, distributed
    from ml.training.events import EventWriter
    from ml.training.fit import Schedule, fit
    from ml.training.head_only import prepare_head_only
    from ml.training.rundata import make_loaders, prepare_data
    from ml.training.rundir import RunEnv

    config = small_config(phantoms, head_only=True, epochs=1, lr=1e-2)
    ctx = distributed.init_distributed(torch.device("cpu"))
    env = RunEnv(config, tmp_path, ctx, EventWriter(enabled=False))
    data = prepare_data(env)
    loaders = make_loaders(config, data, ctx)
    arch = data.manifest.architecture
    full, _ = build.build_model(config, data.manifest)
    before = {k: v.clone() for k, v in full.state_dict().items()}
    head = prepare_head_only(env, full, arch, loaders, data.labels, data.task)
    head_params = {id(p) for p in head.model.parameters()}
    assert {id(p) for g in head.optimizer.param_groups for p in g["params"]} == head_params
    assert len(head.loaders.train_ds) == len(loaders.train_ds)
    criterion = build.build_criterion(config, data.task, loaders.train_ds.targets, len(data.labels))
    result = fit(head.model, head.optimizer, head.loaders, env=env, criterion=criterion, schedule=Schedule(),
                 labels=data.labels, task=data.task, arch=arch, head_only=True)  # fmt: skip
    assert result.best_epoch == 1 and len(result.history) == 1
    after = full.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    prefix = registry.get_spec(arch).head + "."
    assert changed and all(k.startswith(prefix) for k in changed), changed


def test_auto_tune_runs_trials_and_uses_the_best(phantoms: Path, tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    from ml.training.tune import tune_and_train

    config = small_config(phantoms, epochs=1, tune_trials=2, batch_size=16)
    result = tune_and_train(config, tmp_path / "run")
    events = read_events(tmp_path / "run" / "events.jsonl")[0]
    trials = [e for e in events if e.event == "trial"]
    assert len(trials) == 2 and all(
        {"lr", "weight_decay", "augment_strength"} <= set(t.params) for t in trials
    )
    best = next(e for e in events if e.event == "tune_done").best_params
    used = json.loads((tmp_path / "run" / "config.json").read_text())
    assert used["lr"] == best["lr"] and result.model_path.is_file()


@pytest.mark.slow
def test_phantoms_reach_90_percent(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_phantom_folder(root, n_per_class=100, fmt="dcm", seed=2)
    config = small_config(
        root,
        arch=PHANTOM_ARCH,
        image_size=96,
        epochs=20,
        batch_size=16,
        lr=3e-3,
        augment=AugmentConfig(enabled=False),
        split=SplitConfig(ratios=[0.6, 0.15, 0.25]),
    )
    result = run_training(config, tmp_path / "run")
    assert result.metrics["test"]["n_images"] >= 25
    assert result.metrics["test"]["accuracy"] >= 0.9, result.metrics["history"]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(phantoms: Path, tmp_path: Path) -> None:
    config = small_config(phantoms, epochs=2, batch_size=4)
    config.save(tmp_path / "config.json")
    straight = run_cxr(
        "train", "--config", str(tmp_path / "config.json"), "--out", str(tmp_path / "a"), "--quiet"
    )
    assert straight.returncode == 0, straight.stderr

    run_dir = tmp_path / "b"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ml",
            "train",
            "--config",
            str(tmp_path / "config.json"),
            "--out",
            str(run_dir),
            "--quiet",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            events = read_events(run_dir / "events.jsonl")[0]
            if any(e.event == "batch" and e.epoch == 2 for e in events):
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / "model.safetensors").exists()

    resumed = run_cxr("train", "--resume", str(run_dir), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    a = json.loads((tmp_path / "a" / "metrics.json").read_text())
    b = json.loads((run_dir / "metrics.json").read_text())
    assert b["test"] == a["test"] and learning(b["history"]) == learning(a["history"])


@pytest.mark.slow
def test_torchrun_two_processes_write_one_model(phantoms: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "ml",
        "train",
        "--data",
        str(phantoms),
        "--epochs",
        "2",
        "--image-size",
        "64",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--quiet",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300, check=False, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(list(tmp_path.rglob("*.safetensors"))) == 1
    assert len(list(tmp_path.rglob("metrics.json"))) == 1
    events = read_events(out / "events.jsonl")[0]
    assert events[0].world_size == 2 and sum(e.event == "start" for e in events) == 1
    metrics = json.loads((out / "metrics.json").read_text())
    test_rows = sum(1 for r in csv.DictReader(open(out / "split.csv")) if r["split"] == "test")
    assert metrics["test"]["n_images"] == test_rows  # every test image counted once across both ranks
    assert np.isfinite(metrics["history"][-1]["train_loss"])
