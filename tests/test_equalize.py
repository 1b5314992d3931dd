"""Histogram equalisation of the model input: skimage's rule, exposure-invariant, stored in the model.

A model trained on one site's exposures called 7 of 8 normal films from another part of the same
dataset "pneumonia"; mapping their grey levels onto the training histogram turned 4 of them back.
Equalising every input (training and inference alike) takes exposure out of what the network sees.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.exposure import equalize_hist

from ml.errors import ModelFileError
from ml.imaging.read import read_bitmap
from ml.inference.preprocess import derive, equalize_histogram
from ml.models.manifest import InputDerivation, ModelManifest
from ml.training.build import make_manifest
from ml.training.config import TrainConfig


def _radiograph(shared_data: Path) -> Path:
    return sorted((shared_data / "cxr" / "kermany-val" / "NORMAL").glob("*.jpeg"))[0]


def _manifest(equalize: str) -> ModelManifest:
    return ModelManifest(
        name="m", architecture="cxr_resnet_small", labels=["NORMAL", "PNEUMONIA"], input_size=96, channels=1,
        normalisation={"mean": [0.5], "std": [0.5]}, input_derivation=InputDerivation(equalize=equalize),  # type: ignore[arg-type]
    ).validate()


def test_equalisation_is_skimages_equalize_hist_on_a_real_radiograph(shared_data: Path) -> None:
    image = read_bitmap(_radiograph(shared_data))
    unit = derive(image, 0, _manifest("none"))[0]
    ours = equalize_histogram(torch.from_numpy(unit)[None])[0, 0].numpy()
    assert np.abs(ours - equalize_hist(unit[0], nbins=256)).max() < 1e-5
    # spread evenly: the deciles of the output sit near 0.1, 0.2, ... 0.9
    assert np.allclose(np.quantile(ours, np.linspace(0.1, 0.9, 9)), np.linspace(0.1, 0.9, 9), atol=0.03)


def test_an_over_and_an_under_exposed_copy_reach_the_network_alike(shared_data: Path, tmp_path: Path) -> None:
    from PIL import Image

    grey = np.asarray(Image.open(_radiograph(shared_data)).convert("L"), dtype=np.float64) / 255.0
    paths = []
    for name, gamma in (("dark", 2.0), ("bright", 0.5)):
        p = tmp_path / f"{name}.png"
        Image.fromarray(np.round(255 * grey**gamma).astype(np.uint8)).save(p)
        paths.append(p)
    dark, bright = (read_bitmap(p) for p in paths)
    plain = [derive(im, 0, _manifest("none"))[0] for im in (dark, bright)]
    equal = [derive(im, 0, _manifest("histogram"))[0] for im in (dark, bright)]
    # without equalisation the two copies differ by a quarter of the grey range on average ...
    assert np.abs(plain[0] - plain[1]).mean() > 0.15
    # ... with it they are nearly the same input (a monotone change of grey levels cancels out)
    assert np.abs(equal[0] - equal[1]).mean() < 0.02


def test_a_constant_image_is_left_as_it_is() -> None:
    t = torch.full((1, 1, 8, 8), 0.3)
    assert torch.equal(equalize_histogram(t), t)


def test_the_training_setting_is_stored_in_the_model_and_survives_a_round_trip() -> None:
    config = TrainConfig.from_dict({"data": {"path": "/data/site"}, "epochs": 1, "equalize": "histogram"})
    manifest = make_manifest(config, ["NORMAL", "PNEUMONIA"], "multiclass", "m")
    assert manifest.input_derivation.equalize == "histogram"
    again = ModelManifest.from_json(manifest.to_json())
    assert again.input_derivation.equalize == "histogram"
    assert ModelManifest.from_json(_manifest("none").to_json()).input_derivation.equalize == "none"


def test_an_unknown_equalisation_is_refused_by_name() -> None:
    with pytest.raises(ModelFileError, match="unknown equalisation 'clahe'"):
        _manifest("clahe")
