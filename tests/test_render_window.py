"""`cxr render --window C W` on float pixel data gives a grey-level image, not a threshold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ml.cli import main as cxr
from ml.imaging.display import auto_window, manual_window, modality_values, render
from ml.imaging.read import read_image


def test_window_on_float_pixels_keeps_grey_levels(dicom_dir: Path, tmp_path: Path) -> None:
    path = dicom_dir / "parametric_map_float.dcm"  # float values in [0, 0.94]
    image = read_image(path)
    auto = auto_window(modality_values(image))
    out = tmp_path / "w.png"
    assert cxr(["render", str(path), "-o", str(out), "--window", f"{auto.center}", f"{auto.width}"]) == 0
    written = np.asarray(Image.open(out))
    # the automatic window typed by hand renders like the automatic window, with many grey levels
    assert len(np.unique(written)) > 50
    assert np.abs(written.astype(int) - render(image, voi=auto).astype(int)).max() <= 1
    assert manual_window(image, 0.5, 0.5).function == "LINEAR_EXACT"


def test_window_on_integer_pixels_stays_dicom_linear(dicom_dir: Path) -> None:
    image = read_image(dicom_dir / "rsna_cxr_pa.dcm")
    w = manual_window(image, 128, 100)
    assert (w.center, w.width, w.function) == (128.0, 100.0, "LINEAR")
