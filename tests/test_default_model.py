"""The shipped default model (resources/models): loads, carries its model card, installs itself into a
fresh library without network, is the default for the CLI, and classifies real paediatric films."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from ml.models import bundle, library

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "resources" / "models" / "cxr-default-pneumonia.safetensors"
KERMANY_VAL = ROOT.parent / "shared" / "data" / "cxr" / "kermany-val"

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("CXR_STUDIO_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the default model must install without network access")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _card() -> dict:
    return bundle.read_manifest(SHIPPED).provenance.extra["model_card"]


def test_the_shipped_file_is_small_and_loads_with_the_training_folder_labels():
    assert SHIPPED.is_file(), f"{SHIPPED} is missing: run build_scripts/train_default_model.py"
    assert SHIPPED.stat().st_size <= 10 * 1024 * 1024
    assert library.bundled_default_model() == SHIPPED
    model, manifest = bundle.load_model(SHIPPED)
    assert manifest.labels == ["NORMAL", "PNEUMONIA"]
    assert manifest.task == "multiclass"
    assert manifest.name == library.DEFAULT_MODEL_NAME
    assert not model.training


def test_the_manifest_carries_a_full_model_card():
    manifest = bundle.read_manifest(SHIPPED)
    card = _card()
    use = card["intended_use"].lower()
    assert "not for diagnostic use" in use and "paediatric" in use and "1-5" in use
    data = card["training_data"]
    assert data["doi"] == "10.17632/rscbjbr9sj.2" and data["licence"] == "CC BY 4.0"
    assert "Kermany" in data["citation"] and "Cell" in data["citation"]
    split = card["split"]
    assert split["level"] == "patient"
    counts = {name: split["counts"][name]["images"] for name in ("train", "val", "test")}
    assert all(n > 0 for n in counts.values())
    assert 5100 <= sum(counts.values()) <= 5216  # kermany-train less the byte-identical duplicates
    test = card["internal_test"]
    assert "not the official test" in test["split"].lower()
    assert test["n_images"] == counts["test"]
    for key in ("accuracy", "sensitivity", "specificity", "auroc"):
        lo, hi = test["ci95"][key]
        assert lo <= test["metrics"][key] <= hi, key
    op = card["operating_point"]
    assert "validation" in op["how_chosen"] and 0 < op["threshold_calibrated_probability"] < 1
    assert card["calibration"]["temperature"] > 0 and manifest.calibration == "temperature"
    limits = " ".join(card["known_limits"]).lower()
    assert "adult" in limits and "lateral" in limits and "other findings" in limits
    assert "10.17632/rscbjbr9sj.2" in manifest.description


def test_a_fresh_library_installs_it_as_default_without_network(home, no_network):
    assert library.list_models() == []
    found = library.ensure_default_model()
    assert found is not None and found.default and found.name == library.DEFAULT_MODEL_NAME
    assert found.path.parent == home / "models"
    assert found.path.read_bytes() == SHIPPED.read_bytes()
    assert [m.name for m in library.list_models() if m.default] == [library.DEFAULT_MODEL_NAME]
    assert library.resolve_default_model() == found.path
    # a user's removal sticks: the same shipped file is not installed again
    library.remove_model(found.name)
    assert library.ensure_default_model() is None
    with pytest.raises(library.ModelFileError, match="no default model"):
        library.resolve_default_model()


def test_a_default_the_user_chose_is_kept(home, tmp_path):
    import torch

    from ml.models import registry
    from ml.models.manifest import ModelManifest

    torch.manual_seed(0)
    other = bundle.save_model(
        tmp_path / "mine.safetensors",
        registry.build_model("cxr_resnet_small", 2),
        ModelManifest(name="mine", architecture="cxr_resnet_small", labels=["a", "b"], input_size=64),
    )
    library.ensure_default_model()
    library.install_model_file(other)
    library.set_default_model("mine")
    assert library.ensure_default_model().name == "mine"
    assert {m.name: m.default for m in library.list_models()} == {
        library.DEFAULT_MODEL_NAME: False,
        "mine": True,
    }


def test_it_classifies_real_paediatric_films(home):
    """16 films of the official val split (never used in training or model selection)."""
    from ml.imaging.read import read_image
    from ml.inference.predictor import load_predictor

    files = sorted(
        (KERMANY_VAL / c / f.name, c) for c in ("NORMAL", "PNEUMONIA") for f in (KERMANY_VAL / c).iterdir()
    )
    assert len(files) == 16, f"expected 16 images in {KERMANY_VAL}"
    predictor = load_predictor(library.resolve_default_model(), device="cpu")
    correct = 0
    for path, truth in files:
        pred = predictor.predict_one(read_image(path))
        correct += pred.top_label == truth
    # Measured 15/16 with the shipped cxr_resnet_small4 model (8/8 NORMAL, 7/8 PNEUMONIA); the
    # three-stage model before it got 11/16 (4/8 NORMAL). The brief asks for >= 12/16; 16 films
    # cannot measure more than that (one film is 6 points), so the bar is the brief's, not 15.
    assert correct >= 12, f"{correct}/16 correct"


def test_cli_uses_the_default_model_when_none_is_named(home, capsys):
    from ml.cli import main

    assert main(["models", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    rows = listed["installed"] if isinstance(listed, dict) else listed
    assert [r["name"] for r in rows if r.get("default")] == [library.DEFAULT_MODEL_NAME]
    image = next((KERMANY_VAL / "PNEUMONIA").iterdir())
    assert main(["predict", str(image)]) == 0
    out = capsys.readouterr()
    assert library.DEFAULT_MODEL_NAME in out.err and ("PNEUMONIA" in out.out or "NORMAL" in out.out)
    assert (
        main(
            [
                "evaluate",
                "--data",
                str(KERMANY_VAL),
                "--json",
                "--bootstrap",
                "0",
                "--out",
                str(home / "eval"),
            ]
        )
        == 0
    )
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["labels"] == ["NORMAL", "PNEUMONIA"] and metrics["n_images"] == 16
