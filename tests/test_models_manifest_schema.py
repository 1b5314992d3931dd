"""Malformed manifests are one readable ModelFileError; a bad library entry never breaks the others."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ml.cli import main as cxr
from ml.errors import ModelFileError
from ml.models import bundle, importing, library, registry
from ml.models.manifest import MANIFEST_KEY, ModelManifest

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _good() -> dict:
    return ModelManifest(
        name="tiny", architecture="cxr_resnet_small", labels=["normal", "pneumonia"], input_size=64
    ).to_dict()


def _with(**changes: object) -> dict:
    data = _good()
    data.update(changes)
    return data


MALFORMED = {
    "std as strings": _with(normalisation={"mean": [0.5], "std": ["0.25"]}),
    "mean NaN": _with(normalisation={"mean": [float("nan")], "std": [0.25]}),
    "thresholds as a list": _with(thresholds=[0.5, 0.5]),
    "architecture as a list": _with(architecture=["cxr_resnet_small"]),
    "labels as a string": _with(labels="normal"),
    "input size as text": _with(input_size="224"),
    "format version as text": _with(format_version="1"),
    "derivation as a list": _with(input_derivation=[1, 2]),
    "provenance extra as a list": _with(provenance={"extra": [1]}),
    "no usable label": _with(hidden_labels=["normal", "pneumonia"]),
    "empty label": _with(labels=["", "pneumonia"]),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_manifests_are_readable_errors(case: str) -> None:
    text = json.dumps(MALFORMED[case])
    with pytest.raises(ModelFileError, match="manifest"):
        ModelManifest.from_json(text)


def test_a_sound_manifest_still_reads_and_the_message_names_the_field() -> None:
    assert ModelManifest.from_json(json.dumps(_good())).labels == ["normal", "pneumonia"]
    with pytest.raises(ModelFileError, match="input_size.*whole number"):
        ModelManifest.from_json(json.dumps(_with(input_size="224")))
    with pytest.raises(ModelFileError, match="normalisation.std"):
        ModelManifest.from_json(json.dumps(MALFORMED["std as strings"]))


def test_huge_numbers_and_deep_nesting_are_readable_errors() -> None:
    base = json.dumps(_good())
    with pytest.raises(ModelFileError):
        ModelManifest.from_json(base[:-1] + ', "temperature": ' + "9" * 5000 + "}")
    with pytest.raises(ModelFileError):
        ModelManifest.from_json(base[:-1] + ', "scope": ' + "[" * 100_000 + "]" * 100_000 + "}")


def _raw_safetensors(path: Path, header: dict, payload: bytes = b"\0" * 16) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + payload)
    return path


@pytest.mark.parametrize(
    "offsets", [["0", "4"], [0.5, 4], [4, 0], [-1, 4], [0, [4]], [True, 4], None, [0, 10**30]]
)
def test_non_integer_tensor_offsets_are_readable_errors(tmp_path: Path, offsets: object) -> None:
    header = {"w": {"dtype": "F32", "shape": [1], "data_offsets": offsets}, "__metadata__": {}}
    with pytest.raises(ModelFileError):
        bundle.read_header(_raw_safetensors(tmp_path / "x.safetensors", header))


def test_deeply_nested_safetensors_header_is_a_readable_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.safetensors"
    raw = b"[" * 200_000 + b"]" * 200_000
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    with pytest.raises(ModelFileError):
        bundle.read_header(path)


def _model(folder: Path, name: str) -> Path:
    torch.manual_seed(0)
    model = registry.build_model("cxr_resnet_small", 2)
    manifest = ModelManifest(name=name, architecture="cxr_resnet_small", labels=["a", "b"], input_size=64)
    return bundle.save_model(folder / f"{name}.safetensors", model, manifest)


def test_one_bad_library_file_is_listed_as_broken_and_the_others_keep_working(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CXR_STUDIO_HOME", str(tmp_path / "home"))
    folder = library.models_dir()
    good = _model(folder, "good")
    save_file(
        {"w": torch.zeros(1)},
        str(folder / "bad.safetensors"),
        metadata={MANIFEST_KEY: json.dumps(MALFORMED["thresholds as a list"])},
    )
    models = {m.path.stem: m for m in library.list_models()}
    assert models["good"].error is None and models["bad"].error
    assert library.resolve_model("good") == good
    with pytest.raises(ModelFileError):
        library.resolve_model("bad")
    assert cxr(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "good" in out and "bad" in out


def test_import_refuses_weights_that_cannot_work(tmp_path: Path) -> None:
    torch.manual_seed(0)
    state = registry.build_model("cxr_resnet_small", 2).state_dict()
    kwargs = dict(
        architecture="cxr_resnet_small", labels=["a", "b"], task="multiclass", name="m", input_size=64
    )
    poisoned = dict(state)
    key = next(k for k, v in state.items() if v.is_floating_point())
    poisoned[key] = state[key].clone().fill_(float("nan"))
    with pytest.raises(ModelFileError, match="NaN or infinite"):
        importing.convert_state_dict(poisoned, **kwargs)
    with pytest.raises(ModelFileError, match="shape"):  # 2 outputs, 3 labels
        importing.convert_state_dict(state, **{**kwargs, "labels": ["a", "b", "c"]})
    with pytest.raises(ModelFileError, match="normalisation"):
        importing.convert_state_dict(state, **kwargs, normalisation={"mean": ["x"], "std": [0.5]})
    with pytest.raises(ModelFileError, match="usable label"):
        importing.convert_state_dict(state, **kwargs, hidden_labels=["a", "b"])
    fitted, _ = importing.convert_state_dict(state, **kwargs)
    assert set(fitted) == set(state)
