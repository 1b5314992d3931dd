"""Model files: one .safetensors with the manifest inside; atomic writes; readable errors."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from safetensors.torch import save_file

from ml import DISCLAIMER
from ml.errors import ModelFileError
from ml.models import bundle, registry
from ml.models.manifest import (
    MANIFEST_KEY,
    InputDerivation,
    ModelManifest,
    Provenance,
    normalise_tensor,
    xrv_op_norm,
)

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def small_manifest(**overrides) -> ModelManifest:
    fields = dict(
        name="pneumonia-small",
        architecture="cxr_resnet_small",
        labels=["normal", "pneumonia", "covid-19"],
        task="multiclass",
        input_size=64,
        channels=1,
        normalisation={"mean": [0.5], "std": [0.25]},
        input_derivation=InputDerivation(voi="auto", resize="letterbox"),
        thresholds={"pneumonia": 0.4},
        provenance=Provenance(
            training_data="synthetic phantoms",
            split="patient-level 80/20",
            metrics={"accuracy": 0.93},
            date="2025-01-02",
            source_url="https://example.org/x",
        ),
        description="test model",
    )
    fields.update(overrides)
    return ModelManifest(**fields)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return registry.build_model("cxr_resnet_small", 3).eval()


def test_roundtrip_restores_weights_outputs_and_manifest(tmp_path, model):
    path = bundle.save_model(tmp_path / "m.safetensors", model, small_manifest())
    loaded, manifest = bundle.load_model(path)
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    assert not loaded.training
    assert manifest == small_manifest()
    assert manifest.disclaimer == DISCLAIMER == "Not for diagnostic use."
    assert manifest.input_derivation.resize == "letterbox" and manifest.input_derivation.modality_lut
    assert manifest.provenance.metrics == {"accuracy": 0.93}
    assert manifest.threshold("pneumonia") == 0.4 and manifest.threshold("normal") == 0.5
    # the manifest is readable on its own, as JSON, by any safetensors reader
    assert bundle.read_manifest(path) == manifest
    _, metadata = bundle.read_header(path)
    assert json.loads(metadata[MANIFEST_KEY])["labels"] == ["normal", "pneumonia", "covid-19"]


def test_state_dict_can_be_saved_too_and_defaults_are_sensible(tmp_path, model):
    manifest = ModelManifest(name="x", architecture="cxr_resnet_small", labels=["a", "b", "c"])
    path = bundle.save_model(tmp_path / "x.safetensors", model.state_dict(), manifest)
    got = bundle.read_manifest(path)
    assert (
        got.input_derivation == InputDerivation()
    )  # modality LUT, default VOI, MONOCHROME1 inverted, squash
    assert got.input_derivation.resize == "squash" and got.input_derivation.invert_monochrome1
    assert got.format_version == 1 and got.provenance.app_version


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path, model, monkeypatch):
    path = tmp_path / "m.safetensors"
    bundle.save_model(path, model, small_manifest())
    before = path.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]

    import safetensors.torch

    def crash_half_way(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"\x00" * 100)
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", crash_half_way)
    with pytest.raises(OSError, match="disk full"):
        bundle.save_model(path, model, small_manifest(name="other"))
    # the old file is untouched and still loads; the half-written temporary file is gone
    assert path.read_bytes() == before
    assert bundle.read_manifest(path).name == "pneumonia-small"
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_weights_that_do_not_fit_the_labels_are_never_written(tmp_path, model):
    with pytest.raises(ModelFileError, match="'fc.weight' has shape \\[3, 64\\] but \\[2, 64\\]"):
        bundle.save_model(
            tmp_path / "bad.safetensors", model, small_manifest(labels=["a", "b"], thresholds=None)
        )
    assert not (tmp_path / "bad.safetensors").exists()


def test_random_bytes_are_not_a_model(tmp_path):
    path = tmp_path / "noise.safetensors"
    path.write_bytes(torch.randint(0, 256, (5000,), dtype=torch.uint8).numpy().tobytes())
    with pytest.raises(ModelFileError, match="not a model file"):
        bundle.load_model(path)
    tiny = tmp_path / "tiny.safetensors"
    tiny.write_bytes(b"abc")
    with pytest.raises(ModelFileError, match="not a model file"):
        bundle.read_manifest(tiny)


def test_json_that_is_not_safetensors_is_not_a_model(tmp_path):
    path = tmp_path / "x.safetensors"
    body = b"[1, 2, 3]"
    path.write_bytes(struct.pack("<Q", len(body)) + body)
    with pytest.raises(ModelFileError, match="not a model file"):
        bundle.read_manifest(path)


@pytest.mark.parametrize("keep", [0.5, 0.999, 0.01])
def test_truncated_file_is_reported_as_truncated(tmp_path, model, keep):
    path = bundle.save_model(tmp_path / "m.safetensors", model, small_manifest())
    data = path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ModelFileError, match="truncated"):
        bundle.load_model(cut)


def test_foreign_safetensors_says_use_import(tmp_path, model):
    path = tmp_path / "foreign.safetensors"
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, str(path), metadata={"format": "pt"}
    )
    with pytest.raises(ModelFileError, match="not a CXR Studio model.*import"):
        bundle.load_model(path)
    # its tensors are still readable for conversion
    assert set(bundle.load_state_dict(path)) == set(model.state_dict())


def _write_with_manifest(path, state, manifest_json: str):
    save_file(
        {k: v.contiguous() for k, v in state.items()}, str(path), metadata={MANIFEST_KEY: manifest_json}
    )


def test_shape_mismatch_names_the_tensor(tmp_path, model):
    path = tmp_path / "m.safetensors"
    _write_with_manifest(
        path, model.state_dict(), small_manifest(labels=["a", "b", "c", "d"], thresholds=None).to_json()
    )
    with pytest.raises(ModelFileError, match="tensor 'fc.weight' has shape \\[3, 64\\] but \\[4, 64\\]"):
        bundle.load_model(path)


def test_missing_and_unknown_tensors_are_named(tmp_path, model):
    state = dict(model.state_dict())
    state.pop("fc.bias")
    path = tmp_path / "m.safetensors"
    _write_with_manifest(path, state, small_manifest().to_json())
    with pytest.raises(ModelFileError, match="missing 1 tensor.*'fc.bias'"):
        bundle.load_model(path)
    other = registry.build_model("resnet18", 3, in_channels=1).state_dict()
    _write_with_manifest(path, other, small_manifest().to_json())
    with pytest.raises(ModelFileError, match="do not match architecture 'cxr_resnet_small'"):
        bundle.load_model(path)


def test_damaged_or_unknown_manifests_are_clear(tmp_path, model):
    path = tmp_path / "m.safetensors"
    _write_with_manifest(path, model.state_dict(), "{not json")
    with pytest.raises(ModelFileError, match="manifest is damaged"):
        bundle.read_manifest(path)
    newer = json.loads(small_manifest().to_json()) | {"format_version": 99}
    _write_with_manifest(path, model.state_dict(), json.dumps(newer))
    with pytest.raises(ModelFileError, match="newer CXR Studio"):
        bundle.read_manifest(path)
    _write_with_manifest(path, model.state_dict(), small_manifest(architecture="alexnet").to_json())
    with pytest.raises(ModelFileError, match="Unknown architecture 'alexnet'"):
        bundle.load_model(path)
    with pytest.raises(ModelFileError, match="not found"):
        bundle.read_manifest(tmp_path / "absent.safetensors")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"task": "regression"}, "task"),
        ({"labels": ["a", "a", "b"]}, "repeat"),
        ({"channels": 2}, "channels"),
        ({"thresholds": {"nope": 0.5}}, "unknown label"),
        ({"thresholds": {"normal": 1.5}}, "between 0 and 1"),
        ({"normalisation": "weird"}, "normalisation"),
        ({"hidden_labels": ["x"]}, "hidden label"),
    ],
)
def test_invalid_manifests_are_refused(overrides, message):
    with pytest.raises(ModelFileError, match=message):
        small_manifest(**overrides).validate()


def test_unknown_manifest_keys_from_newer_minor_versions_are_ignored():
    data = json.loads(small_manifest().to_json()) | {"some_future_field": 1}
    assert ModelManifest.from_dict(data) == small_manifest()


def test_normalisation_helpers():
    x = torch.tensor([[[0.0, 0.5, 1.0]]])
    torch.testing.assert_close(normalise_tensor(x, "xrv"), torch.tensor([[[-1024.0, 0.0, 1024.0]]]))
    torch.testing.assert_close(
        normalise_tensor(x, {"mean": [0.5], "std": [0.25]}), torch.tensor([[[-2.0, 0.0, 2.0]]])
    )
    probs = torch.tensor([[0.1, 0.2, 0.9]])
    thresholds = torch.tensor([0.1, float("nan"), 0.5])
    calibrated = xrv_op_norm(probs, thresholds)
    torch.testing.assert_close(calibrated, torch.tensor([[0.5, 0.5, 0.9]]))
