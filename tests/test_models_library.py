"""The model library (user data dir, install/list/remove/resolve, import dispatch) and the catalogue."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ml.errors import CxrError, ModelFileError
from ml.models import bundle, catalogue, library, registry
from ml.models.manifest import ModelManifest

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("CXR_STUDIO_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _model_file(folder: Path, name: str = "covid-small", labels=("normal", "pneumonia", "covid-19")) -> Path:
    torch.manual_seed(0)
    model = registry.build_model("cxr_resnet_small", len(labels))
    manifest = ModelManifest(name=name, architecture="cxr_resnet_small", labels=list(labels), input_size=64)
    return bundle.save_model(folder / f"{name}-download.safetensors", model, manifest)


def test_home_comes_from_the_environment_or_the_platform(tmp_path, monkeypatch):
    import platformdirs

    from ml import paths

    monkeypatch.setenv("CXR_STUDIO_HOME", str(tmp_path / "custom"))
    assert library.models_dir() == tmp_path / "custom" / "models" and library.models_dir().is_dir()
    assert library.cache_dir() == tmp_path / "custom" / "cache"
    monkeypatch.delenv("CXR_STUDIO_HOME")
    # without the override: the platform's per-user data folder (platformdirs, ml.paths)
    expected = platformdirs.user_data_path(paths.app_folder_name(), appauthor=False, roaming=False)
    assert library.cxr_home() == expected


def test_install_list_resolve_and_remove(home, tmp_path):
    assert library.list_models() == []
    src = _model_file(tmp_path)
    installed = library.install_model_file(src)
    assert installed.path == home / "models" / "covid-small.safetensors"
    assert installed.path.read_bytes() == src.read_bytes()
    listed = library.list_models()
    assert [(m.name, m.error) for m in listed] == [("covid-small", None)]
    assert listed[0].manifest.labels == ["normal", "pneumonia", "covid-19"]
    # MODEL is a path or a name
    assert library.resolve_model("covid-small") == installed.path
    assert library.resolve_model(str(src)) == src
    with pytest.raises(ModelFileError, match="already installed"):
        library.install_model_file(src)
    library.install_model_file(src, overwrite=True)
    renamed = library.install_model_file(src, name="covid small v2")
    assert (
        renamed.path.name == "covid_small_v2.safetensors"
        and bundle.read_manifest(renamed.path).name == "covid small v2"
    )
    assert library.remove_model("covid-small") == installed.path
    assert not installed.path.exists()
    with pytest.raises(ModelFileError, match="No installed model named 'covid-small'"):
        library.remove_model("covid-small")
    assert [p.name for p in (home / "models").iterdir()] == ["covid_small_v2.safetensors"]


def test_resolve_unknown_names_and_paths_clearly(home, tmp_path):
    with pytest.raises(
        ModelFileError, match="No model file or installed model named 'nope'. No model is installed yet."
    ):
        library.resolve_model("nope")
    library.install_model_file(_model_file(tmp_path))
    with pytest.raises(ModelFileError, match="Installed models: covid-small"):
        library.resolve_model("nope")
    with pytest.raises(ModelFileError, match="Model file not found"):
        library.resolve_model(str(tmp_path / "missing.safetensors"))
    with pytest.raises(ModelFileError, match="is a folder"):
        library.resolve_model(str(tmp_path))


def test_broken_files_in_the_library_are_listed_with_their_error(home, tmp_path):
    library.install_model_file(_model_file(tmp_path))
    good = home / "models" / "covid-small.safetensors"
    (home / "models" / "half.safetensors").write_bytes(good.read_bytes()[:5000])
    listed = {m.name: m for m in library.list_models()}
    assert listed["covid-small"].error is None
    assert listed["half"].manifest is None and "truncated" in listed["half"].error
    with pytest.raises(ModelFileError, match="truncated"):
        library.resolve_model("half")


def test_a_damaged_model_is_not_installed(home, tmp_path):
    src = _model_file(tmp_path)
    (tmp_path / "cut.safetensors").write_bytes(src.read_bytes()[:-100])
    with pytest.raises(ModelFileError, match="truncated"):
        library.import_model(tmp_path / "cut.safetensors")
    assert library.list_models() == []


def test_import_dispatches_on_the_file_kind(home, tmp_path):
    torch.manual_seed(1)
    state = registry.build_model("cxr_resnet_small", 2).state_dict()
    # our own model file
    assert library.import_model(_model_file(tmp_path)).name == "covid-small"
    # a foreign safetensors file needs the architecture and labels
    foreign = tmp_path / "foreign.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(foreign))
    with pytest.raises(ModelFileError, match="name its architecture"):
        library.import_model(foreign)
    got = library.import_model(
        foreign, architecture="cxr_resnet_small", labels=["no finding", "finding"], task="multilabel"
    )
    assert got.manifest.task == "multilabel" and got.name == "foreign"
    # a torch state dict, also without a .pth suffix
    pth = tmp_path / "weights.bin"
    torch.save({"state_dict": state}, pth)
    with pytest.raises(ModelFileError, match="Name the labels"):
        library.import_model(pth, architecture="cxr_resnet_small")
    got = library.import_model(
        pth, architecture="cxr_resnet_small", labels=["normal", "abnormal"], name="seed"
    )
    assert got.manifest.task == "multiclass" and got.manifest.labels == ["normal", "abnormal"]
    # TorchXRayVision weights need only the architecture
    xrv = tmp_path / "xrv.pt"
    torch.save(registry.build_model("xrv_densenet121", 18).state_dict(), xrv)
    got = library.import_model(xrv, architecture="xrv_densenet121")
    assert got.manifest.labels == registry.XRV_LABELS and got.manifest.normalisation == "xrv"
    assert sorted(m.name for m in library.list_models()) == ["covid-small", "foreign", "seed", "xrv"]
    for m in library.list_models():
        bundle.load_model(m.path)


# ---------------------------------------------------------------------- catalogue


def test_catalogue_lists_the_issue_weights_with_official_urls():
    entries = {e.name: e for e in catalogue.load_catalogue()}
    for key in ("all", "nih", "chex", "pc", "rsna", "mimic_ch"):
        entry = entries[f"densenet121-res224-{key}"]
        assert entry.kind == "xrv" and entry.architecture == "xrv_densenet121" and entry.input_size == 224
        assert entry.url.startswith("https://github.com/mlmed/torchxrayvision/releases/download/v1/")
        assert entry.filename.endswith("-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt")
        assert len(entry.labels) == 18 and len(entry.op_threshs) == 18
        for label, trained, threshold in zip(
            registry.XRV_LABELS, entry.labels, entry.op_threshs, strict=True
        ):
            assert trained in ("", label)
            assert (threshold is None) == (trained == "")
    assert entries["densenet121-res224-all"].trained_labels() == registry.XRV_LABELS
    assert entries["densenet121-res224-rsna"].trained_labels() == ["Pneumonia", "Lung Opacity"]
    assert entries["densenet121-res224-rsna"].filename.startswith("kaggle-")
    res = entries["resnet50-res512-all"]
    assert res.architecture == "xrv_resnet50" and res.input_size == 512
    assert res.filename == "pc-nih-rsna-siim-vin-resnet50-test512-e400-state.pt"
    torchvision_archs = set(registry.architectures()) - {
        "xrv_densenet121",
        "xrv_resnet50",
        "cxr_resnet_small",
        "cxr_resnet_small4",
    }
    for arch in torchvision_archs:
        entry = entries[f"{arch}-imagenet"]
        assert entry.url.startswith("https://download.pytorch.org/models/")
        assert re.search(rf"-{entry.sha256_prefix}\.pth$", entry.url) and len(entry.sha256_prefix) >= 8
        assert entry.architecture == arch
    assert len(entries) == len(catalogue.load_catalogue())  # names are unique
    for entry in entries.values():
        registry.get_spec(entry.architecture)


def test_imagenet_labels_are_unique_and_unknown_names_are_clear():
    labels = catalogue.imagenet_categories("resnet18")
    assert len(labels) == 1000 == len(set(labels))
    with pytest.raises(CxrError, match="not in the model catalogue. Known names: densenet121-res224-all"):
        catalogue.get_entry("nonsense")


def test_listing_the_library_does_not_load_torch(home, tmp_path):
    import subprocess
    import sys

    library.install_model_file(_model_file(tmp_path))
    code = (
        "import sys; from ml.models import library; "
        "assert [m.name for m in library.list_models()] == ['covid-small']; "
        "assert library.resolve_model('covid-small').exists(); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
