"""What a training config turns into: the manifest's input derivation follows the starting weights."""

from __future__ import annotations

from ml.models.manifest import InputDerivation
from ml.training.build import make_manifest
from ml.training.config import TrainConfig


def _config(**kw) -> TrainConfig:
    return TrainConfig.from_dict({"data": {"path": "/data/site"}, "epochs": 1, **kw})


def test_fine_tuning_torchxrayvision_weights_keeps_their_input_derivation() -> None:
    """xrv weights were trained on xrv's scaling/centre crop: a fine-tune must be fed the same pixels."""
    manifest = make_manifest(_config(arch="xrv_densenet121", weights="xrv"), ["a", "b"], "multiclass", "m")
    assert manifest.input_derivation == InputDerivation.xrv()
    assert manifest.normalisation == "xrv" and manifest.channels == 1


def test_a_model_trained_from_scratch_keeps_the_display_derivation() -> None:
    manifest = make_manifest(_config(arch="cxr_resnet_small", weights="none"), ["a", "b"], "multiclass", "m")
    assert manifest.input_derivation.pixels == "display"
    assert manifest.description.startswith("Trained from scratch")
