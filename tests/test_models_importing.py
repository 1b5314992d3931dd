"""Importing foreign weights: torchvision-style state dicts, TorchXRayVision files, malicious pickles."""

from __future__ import annotations

import importlib
import math
import os
import pickle
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from ml.errors import ModelFileError, UnsafeModelFileError
from ml.models import bundle, importing, registry

pytestmark = pytest.mark.usefixtures("single_torch_thread")


MARKER_ENV = "CXR_TEST_MARKER"


class OpensAFile:
    """Unpickling this would create the marker file (builtins.open)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


class RunsAShellCommand:
    """Unpickling this would create the marker file through os.system."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _small_state(num_classes: int = 3) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return registry.build_model("resnet18", num_classes, in_channels=1).eval().state_dict()


def _outputs(state, arch="resnet18", n=3, channels=1, size=64):
    model = registry.build_model(arch, n, channels)
    model.load_state_dict(state)
    with torch.no_grad():
        return model.eval()(torch.linspace(0, 1, channels * size * size).view(1, channels, size, size))


# ---------------------------------------------------------------------- torchvision-style state dicts


@pytest.mark.parametrize("wrapper", ["plain", "state_dict", "model", "dataparallel", "legacy_format"])
def test_torchvision_state_dicts_are_imported_and_give_the_same_outputs(tmp_path, wrapper):
    state = _small_state()
    path = tmp_path / "seed-model.pth"
    if wrapper == "plain":
        torch.save(state, path)
    elif wrapper == "state_dict":
        torch.save({"epoch": 12, "state_dict": state, "optimizer": {"lr": 0.1}}, path)
    elif wrapper == "model":
        torch.save({"model": state}, path)
    elif wrapper == "dataparallel":
        torch.save({"state_dict": {"module." + k: v for k, v in state.items()}}, path)
    else:
        torch.save(state, path, _use_new_zipfile_serialization=False)
    converted, manifest = importing.convert_torch_file(
        path, architecture="resnet18", labels=["normal", "pneumonia", "covid-19"], task="multiclass"
    )
    assert manifest.channels == 1  # inferred from the first convolution
    assert manifest.name == "seed-model" and manifest.provenance.extra["imported_from"] == "seed-model.pth"
    out = bundle.save_model(tmp_path / "out.safetensors", converted, manifest)
    model, loaded = bundle.load_model(out)
    with torch.no_grad():
        torch.testing.assert_close(model(torch.linspace(0, 1, 64 * 64).view(1, 1, 64, 64)), _outputs(state))
    assert loaded.labels == ["normal", "pneumonia", "covid-19"]


def test_label_count_that_does_not_fit_the_head_names_the_tensor(tmp_path):
    path = tmp_path / "m.pth"
    torch.save(_small_state(3), path)
    with pytest.raises(ModelFileError, match="'fc.weight' has shape \\[3, 512\\] but \\[2, 512\\]"):
        importing.convert_torch_file(path, architecture="resnet18", labels=["a", "b"], task="multiclass")


def test_weights_of_another_architecture_are_refused_clearly(tmp_path):
    path = tmp_path / "m.pth"
    torch.save(_small_state(3), path)
    with pytest.raises(ModelFileError, match="do not match architecture 'densenet121'"):
        importing.convert_torch_file(
            path, architecture="densenet121", labels=["a", "b", "c"], task="multiclass"
        )


def test_files_without_weights_or_garbage_are_model_file_errors(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(
        torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
        .numpy()
        .tobytes()
    )
    with pytest.raises(ModelFileError, match="not a PyTorch weights file") as info:
        importing.safe_torch_load(garbage)
    assert not isinstance(info.value, UnsafeModelFileError)
    notes = tmp_path / "notes.pth"
    torch.save({"epoch": 3, "note": "no weights"}, notes)
    with pytest.raises(ModelFileError, match="No model weights found.*epoch, note"):
        importing.convert_torch_file(notes, architecture="resnet18", labels=["a", "b"], task="multiclass")


# ---------------------------------------------------------------------- malicious pickles


@pytest.mark.parametrize("payload", [OpensAFile, RunsAShellCommand])
@pytest.mark.parametrize("fmt", ["zip", "legacy", "raw_pickle"])
def test_file_whose_unpickling_would_run_code_is_refused_and_nothing_runs(tmp_path, payload, fmt):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pth"
    obj = {"state_dict": _small_state(), "extra": payload(str(marker))}
    if fmt == "zip":
        torch.save(obj, path)
    elif fmt == "legacy":
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(payload(str(marker)), protocol=2))
    with pytest.raises(UnsafeModelFileError, match="refused: loading it would run code") as info:
        importing.convert_torch_file(path, architecture="resnet18", labels=["a", "b", "c"], task="multiclass")
    assert "state_dict" in str(info.value)  # the message says what to ask for instead
    assert not marker.exists()
    # sanity check of the test itself: an unrestricted load WOULD have created the marker
    if fmt == "raw_pickle" and payload is OpensAFile:
        pickle.loads(path.read_bytes()).close()
        assert marker.exists()


# ---------------------------------------------------------------------- TorchXRayVision

FAKE_XRV = textwrap.dedent(
    """
    import os, pathlib, torch, torchvision

    class DenseNet(torchvision.models.DenseNet):
        # stands in for torchxrayvision.models.DenseNet: same layout, and it would leave a marker
        # file if any of its code ran while the checkpoint is read
        def __init__(self):
            super().__init__(32, (6, 12, 24, 16), 64, num_classes=18)
            self.features.conv0 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
            self.register_buffer("op_threshs", torch.linspace(0.05, 0.9, 18))
            self.upsample = torch.nn.Upsample(size=(224, 224), mode="bilinear", align_corners=False)
            self.weights = "densenet121-res224-all"

        def __setstate__(self, state):
            pathlib.Path(os.environ["CXR_TEST_MARKER"]).touch()
            super().__setstate__(state)
    """
)


def _forget_fake_package(folder: str) -> None:
    if folder in sys.path:
        sys.path.remove(folder)
    for name in [n for n in sys.modules if n.split(".")[0] == "torchxrayvision"]:
        del sys.modules[name]


@pytest.fixture
def fake_xrv(tmp_path, monkeypatch):
    """A TorchXRayVision-like DenseNet instance; call ``forget()`` to make its package unimportable."""
    package = tmp_path / "fakexrv" / "torchxrayvision"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text(FAKE_XRV)
    monkeypatch.setenv(MARKER_ENV, str(tmp_path / "MARKER"))
    folder = str(package.parent)
    # the real package (a test dependency, imported by the parity tests) steps aside meanwhile
    real = {n: m for n, m in sys.modules.items() if n.split(".")[0] == "torchxrayvision"}
    for name in real:
        del sys.modules[name]
    sys.path.insert(0, folder)
    try:
        module = importlib.import_module("torchxrayvision.models")
        torch.manual_seed(1)
        model = module.DenseNet().eval()
        for m in model.modules():  # non-trivial BatchNorm statistics
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        yield model, lambda: _forget_fake_package(folder)
    finally:
        _forget_fake_package(folder)
        sys.modules.update(real)


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_pickled_torchxrayvision_model_converts_without_running_its_code(tmp_path, fake_xrv, fmt):
    fake_model, forget = fake_xrv
    path = tmp_path / "nih-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt"
    torch.save(fake_model, path, _use_new_zipfile_serialization=(fmt == "zip"))
    x = torch.linspace(-1024, 1024, 64 * 64).view(1, 1, 64, 64)
    with torch.no_grad():
        reference = fake_model(x)
    trained = list(registry.XRV_LABELS[:14]) + ["", "", "", ""]
    forget()  # the reader must not need (nor import) TorchXRayVision

    state, manifest = importing.convert_xrv(path, name="xrv-nih", trained_labels=trained)

    assert not (tmp_path / "MARKER").exists()
    assert "torchxrayvision" not in sys.modules
    out = bundle.save_model(tmp_path / "xrv-nih.safetensors", state, manifest)
    model, loaded = bundle.load_model(out)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference)
    assert loaded.architecture == "xrv_densenet121" and loaded.labels == registry.XRV_LABELS
    assert loaded.task == "multilabel" and loaded.normalisation == "xrv" and loaded.channels == 1
    assert loaded.input_size == 224 and loaded.input_derivation.resize == "center_crop"
    assert loaded.hidden_labels == ["Lung Lesion", "Fracture", "Lung Opacity", "Enlarged Cardiomediastinum"]
    expected = torch.linspace(0.05, 0.9, 18).tolist()
    assert loaded.thresholds is not None and len(loaded.thresholds) == 18
    assert math.isclose(loaded.thresholds["Atelectasis"], expected[0], rel_tol=1e-6)
    assert math.isclose(loaded.thresholds["Enlarged Cardiomediastinum"], expected[17], rel_tol=1e-6)
    assert loaded.calibration == "xrv_op_norm"


def test_xrv_state_dict_with_op_threshs_buffer(tmp_path):
    torch.manual_seed(2)
    model = registry.build_model("xrv_densenet121", 18).eval()
    state = dict(model.state_dict())
    thresholds = torch.full((18,), float("nan"))
    thresholds[8], thresholds[16] = 0.13486601, 0.13511065
    state["op_threshs"] = thresholds
    path = tmp_path / "kaggle-densenet121.pt"
    torch.save(state, path)
    converted, manifest = importing.convert_xrv(path)
    assert "op_threshs" not in converted
    assert manifest.thresholds == pytest.approx({"Pneumonia": 0.13486601, "Lung Opacity": 0.13511065})
    for key, value in model.state_dict().items():
        assert torch.equal(converted[key], value), key


def test_xrv_resnet50_state_file_uses_catalogue_thresholds_when_the_file_has_none(tmp_path):
    torch.manual_seed(3)
    state = registry.build_model("xrv_resnet50", 18).state_dict()
    path = tmp_path / "pc-nih-rsna-siim-vin-resnet50-test512-e400-state.pt"
    torch.save(state, path)
    op = [0.5157, 0.5044] + [None] * 14 + [0.5138, float("nan")]
    _, manifest = importing.convert_xrv(path, architecture="xrv_resnet50", op_threshs=op)
    assert manifest.thresholds == {"Atelectasis": 0.5157, "Consolidation": 0.5044, "Lung Opacity": 0.5138}
    assert manifest.input_size == 512 and manifest.hidden_labels == []


def test_xrv_conversion_refuses_other_architectures_and_bad_files(tmp_path):
    with pytest.raises(ModelFileError, match="not a TorchXRayVision architecture"):
        importing.convert_xrv(tmp_path / "x.pt", architecture="resnet18")
    path = tmp_path / "x.pt"
    torch.save(_small_state(), path)
    with pytest.raises(ModelFileError, match="do not match architecture 'xrv_densenet121'"):
        importing.convert_xrv(path)


def test_pickled_module_with_malicious_attribute_is_refused(tmp_path):
    marker = tmp_path / "PWNED"
    module = registry.build_model("cxr_resnet_small", 2)
    module.payload = OpensAFile(str(marker))
    for fmt in (True, False):
        path = tmp_path / f"m{fmt}.pt"
        torch.save(module, path, _use_new_zipfile_serialization=fmt)
        with pytest.raises(UnsafeModelFileError):
            importing.safe_torch_load(path)
        assert not marker.exists()


def test_whole_pickled_torchvision_model_is_read_as_weights(tmp_path):
    torch.manual_seed(4)
    model = registry.build_model("resnet18", 3, in_channels=1).eval()
    path = Path(tmp_path / "whole.pt")
    torch.save(model, path)
    converted, _ = importing.convert_torch_file(
        path, architecture="resnet18", labels=["a", "b", "c"], task="multiclass"
    )
    torch.testing.assert_close(_outputs(converted), _outputs(model.state_dict()))


def test_old_torchvision_densenet_checkpoint_converts(tmp_path):
    """Like densenet121-a639ec97.pth: ``norm.1`` key names and no ``num_batches_tracked``."""
    torch.manual_seed(5)
    model = registry.build_model("densenet121", 3, in_channels=3).eval()
    old = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        if "denselayer" in key:
            for part in ("norm1", "norm2", "conv1", "conv2"):
                key = key.replace(f".{part}.", f".{part[:-1]}.{part[-1]}.")
        old[key] = value
    path = tmp_path / "densenet121-a639ec97.pth"
    torch.save(old, path)
    converted, manifest = importing.convert_torch_file(
        path, architecture="densenet121", labels=["a", "b", "c"], task="multiclass"
    )
    assert manifest.channels == 3
    torch.testing.assert_close(
        _outputs(converted, "densenet121", 3, channels=3),
        _outputs(model.state_dict(), "densenet121", 3, channels=3),
    )
