"""The display pipeline agrees with dcmtk's dcmj2pnm, a reference renderer no one here wrote.

For every grayscale file in ../shared/data/dicom that dcmj2pnm renders, `cxr render` and
dcmj2pnm differ by at most 1 grey level on average with an explicit window (+Ww C W) and with
the file's own first window (+Wi 1) where it has one.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.cli import main as cxr
from ml.errors import CxrError
from ml.imaging.display import auto_window, modality_values
from ml.imaging.read import read_image

DCMJ2PNM = shutil.which("dcmj2pnm")


def _files(dicom_dir: Path) -> list[Path]:
    return sorted(dicom_dir.glob("*.dcm"))


def _dcmtk_render(path: Path, out: Path, *window_args: str) -> np.ndarray | None:
    res = subprocess.run(
        [DCMJ2PNM, "--write-png", "-O", *window_args, str(path), str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    if res.returncode != 0 or not out.exists():
        return None
    return np.asarray(Image.open(out))


def _cxr_render(path: Path, out: Path, *window_args: str) -> np.ndarray:
    code = cxr(["render", str(path), "-o", str(out), *window_args])
    assert code == 0, f"cxr render failed on {path.name}"
    return np.asarray(Image.open(out))


def test_dcmtk_is_installed() -> None:
    assert DCMJ2PNM, "dcmtk's dcmj2pnm is required for the reference tests (apt-get install dcmtk)"


@pytest.mark.skipif(DCMJ2PNM is None, reason="dcmtk missing: test_dcmtk_is_installed fails instead")
def test_explicit_and_file_windows_match_dcmtk(dicom_dir: Path, tmp_path: Path) -> None:
    compared: list[str] = []
    for path in _files(dicom_dir):
        try:
            image = read_image(path)
        except CxrError:
            continue  # files we cannot decode are covered by the error tests
        if image.is_color:
            continue
        # An explicit window near the middle of the body's range (the auto window, rounded).
        auto = auto_window(modality_values(image, 0))
        center, width = f"{round(auto.center)}", f"{max(round(auto.width), 2)}"
        cases = [(("+Ww", center, width), ("--window", center, width))]
        if image.windows:
            w = image.windows[0]
            cases.append((("+Wi", "1"), ()))  # cxr render's default is the file's first window
            assert w.width > 0
        elif image.voi_luts:
            cases.append((("+Wl", "1"), ()))  # ... or, without a window, its first VOI LUT
        for dcmtk_args, cxr_args in cases:
            ref = _dcmtk_render(path, tmp_path / f"{path.stem}_ref.png", *dcmtk_args)
            if ref is None:
                continue  # dcmj2pnm cannot render this file: nothing to compare with
            ours = _cxr_render(path, tmp_path / f"{path.stem}_ours.png", *cxr_args)
            assert ours.shape == ref.shape, path.name
            diff = np.abs(ours.astype(np.int16) - ref.astype(np.int16)).mean()
            assert diff <= 1.0, f"{path.name} {' '.join(dcmtk_args)}: mean difference {diff:.2f} grey levels"
            compared.append(f"{path.name} {' '.join(dcmtk_args)}")
    # The comparison must really have happened on the radiographs and the LUT files.
    names = " ".join(compared)
    # (Debian's dcmj2pnm has no JPEG 2000 or JPEG-LS decoder, so those files are not compared.)
    for expected in ("rsna_cxr_pa.dcm +Ww", "rsna_cxr_pa_monochrome1.dcm +Ww", "mlut_18.dcm +Ww",
                     "vlut_04.dcm +Wl 1", "bad_sequence.dcm +Wi 1", "MR-SIEMENS-DICOM-WithOverlays.dcm +Wi 1",
                     "emri_small_big_endian.dcm +Ww"):
        assert expected in names, f"{expected} was not compared: {compared}"
