"""Enhanced multi-frame images (issue 10 item 6): rescale, window and pixel spacing come from the
Shared / Per-frame Functional Groups Sequences, frame by frame.

The files are built here with highdicom's legacy conversion from single-frame series made of
pydicom's bundled CT_small.dcm / MR_small.dcm, each slice with its own rescale and window.

dcmtk 3.6.7 (the reference renderer here) reads rescale only from the SHARED functional groups and
no Frame VOI LUT, so the per-frame reference is dcmj2pnm on the single-frame slice each frame was
converted from (its top-level rescale and window, +Wi 1); the shared-rescale case (MR) is also
compared with dcmj2pnm on the enhanced file itself (+F n, the frame's window given as +Ww).
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from ml.cli import main as cxr
from ml.imaging.header import read_header
from ml.imaging.read import read_image

highdicom = pytest.importorskip("highdicom")
legacy = pytest.importorskip("highdicom.legacy")
DCMJ2PNM = shutil.which("dcmj2pnm")
needs_dcmtk = pytest.mark.skipif(
    DCMJ2PNM is None, reason="dcmtk missing: test_dcmtk_is_installed fails instead"
)

RESCALES = [(1.0, -1024.0), (2.0, -500.0), (0.5, 100.0)]
WINDOWS = [(100.0, 1500.0), (1500.0, 3000.0), (600.0, 800.0)]  # around each slice's values


def _series(name: str, tmp: Path, per_frame_rescale: bool) -> list[Dataset]:
    base = pydicom.dcmread(get_testdata_file(name))
    series_uid, out = generate_uid(), []
    for i in range(3):
        ds = copy.deepcopy(base)
        ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.InstanceNumber = generate_uid(), series_uid, i + 1
        position = [float(x) for x in ds.ImagePositionPatient]
        position[2] += 5.0 * i
        ds.ImagePositionPatient = position
        slope, intercept = RESCALES[i] if per_frame_rescale else (1.5, -100.0)
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        center, width = WINDOWS[i]
        if not per_frame_rescale:  # windows in modality units of the MR: around its values
            center, width = [(300.0, 600.0), (900.0, 1200.0), (600.0, 300.0)][i]
        ds.WindowCenter, ds.WindowWidth = center, width
        ds.PixelData = (ds.pixel_array + 23 * i).astype(ds.pixel_array.dtype).tobytes()  # frames differ
        ds.save_as(tmp / f"slice{i}.dcm")
        out.append(ds)
    return out


def _enhanced(kind: str, tmp: Path) -> tuple[Path, dict[int, Path]]:
    """The enhanced file and, per frame (0-based), the single-frame slice it came from."""
    ct = kind == "CT"
    series = _series("CT_small.dcm" if ct else "MR_small.dcm", tmp, per_frame_rescale=ct)
    cls = legacy.LegacyConvertedEnhancedCTImage if ct else legacy.LegacyConvertedEnhancedMRImage
    enhanced = cls(series, series_instance_uid=generate_uid(), series_number=9,
                   sop_instance_uid=generate_uid(), instance_number=1)  # fmt: skip
    path = tmp / f"enhanced_{kind}.dcm"
    enhanced.save_as(path)
    by_uid = {ds.SOPInstanceUID: tmp / f"slice{i}.dcm" for i, ds in enumerate(series)}
    sources = {}
    for f, item in enumerate(enhanced.PerFrameFunctionalGroupsSequence):
        uid = item.ConversionSourceAttributesSequence[0].ReferencedSOPInstanceUID
        sources[f] = by_uid[uid]
    return path, sources


def _png(args: list[str], out: Path) -> np.ndarray:
    res = subprocess.run([DCMJ2PNM, "--write-png", *args, str(out)], capture_output=True, text=True,
                         timeout=120, check=False)  # fmt: skip
    assert res.returncode == 0 and out.exists(), res.stderr
    return np.asarray(Image.open(out)).astype(np.int16)


def _ours(path: Path, frame: int, out: Path, *extra: str) -> np.ndarray:
    assert cxr(["render", str(path), "--frame", str(frame), "-o", str(out), *extra]) == 0
    return np.asarray(Image.open(out)).astype(np.int16)


def test_functional_groups_differ_per_frame_in_the_built_files(tmp_path: Path) -> None:
    path, _ = _enhanced("CT", tmp_path)
    ds = pydicom.dcmread(path)
    assert "RescaleSlope" not in ds and "WindowCenter" not in ds and "PixelSpacing" not in ds
    image = read_image(path)
    assert image.n_frames == 3
    assert sorted(image.rescale(f) for f in range(3)) == sorted(RESCALES)
    assert sorted(
        (image.windows_for(f)[0].center, image.windows_for(f)[0].width) for f in range(3)
    ) == sorted(WINDOWS)


@needs_dcmtk
@pytest.mark.parametrize("kind", ["CT", "MR"])
def test_render_matches_dcmtk_frame_by_frame(kind: str, tmp_path: Path) -> None:
    path, sources = _enhanced(kind, tmp_path)
    image = read_image(path)
    for f, source in sources.items():
        ours = _ours(path, f + 1, tmp_path / f"ours{f}.png")  # the frame's own rescale and window
        ref = _png(["+Wi", "1", str(source)], tmp_path / f"ref{f}.png")
        assert ours.shape == ref.shape
        diff = np.abs(ours - ref)
        assert diff.max() <= 1, f"{kind} frame {f + 1}: up to {diff.max()} grey levels from dcmtk"
        assert 5 < ref.mean() < 250, "a window that clips everything would compare nothing"
        if kind == "MR":  # shared rescale: dcmtk reads it from the enhanced file itself
            w = image.windows_for(f)[0]
            ref2 = _png(
                ["+F", str(f + 1), "+Ww", f"{w.center:g}", f"{w.width:g}", str(path)], tmp_path / "r.png"
            )
            assert np.abs(ours - ref2).max() <= 1, f"MR frame {f + 1} vs dcmtk on the enhanced file"
    # the frames really are rendered differently (per-frame values, not frame 1's for all)
    renders = [_ours(path, f + 1, tmp_path / f"o{f}.png") for f in range(3)]
    assert not np.array_equal(renders[0], renders[1]) and not np.array_equal(renders[1], renders[2])


@needs_dcmtk
def test_explicit_window_uses_the_frames_rescale(tmp_path: Path) -> None:
    path, sources = _enhanced("CT", tmp_path)
    for f, source in sources.items():
        ours = _ours(path, f + 1, tmp_path / f"ours{f}.png", "--window", "0", "1000")
        ref = _png(["+Ww", "0", "1000", str(source)], tmp_path / f"ref{f}.png")
        assert np.abs(ours - ref).max() <= 1, f"frame {f + 1}"


@pytest.mark.parametrize("kind", ["CT", "MR"])
def test_pixel_measures_spacing_is_read_so_the_viewer_is_not_uncalibrated(kind: str, tmp_path: Path) -> None:
    path, sources = _enhanced(kind, tmp_path)
    expected = [float(x) for x in pydicom.dcmread(sources[0]).PixelSpacing]
    for meta in (read_header(path), read_image(path).meta):  # the browser's and the viewer's metadata
        assert meta.pixel_spacing is not None, "said 'uncalibrated' despite the Pixel Measures Sequence"
        assert (meta.pixel_spacing.row_mm, meta.pixel_spacing.col_mm) == pytest.approx(expected)
        assert meta.pixel_spacing.calibrated_at_patient


def test_viewer_state_uses_each_frames_window(tmp_path: Path) -> None:
    from app.viewer.state import DisplayState

    path, _ = _enhanced("CT", tmp_path)
    image = read_image(path)
    state = DisplayState()
    state.set_image(image)
    for f in (0, 2, 1):
        state.set_frame(f)
        w = state.voi
        assert isinstance(w, type(image.windows_for(f)[0]))
        assert (w.center, w.width) == (image.windows_for(f)[0].center, image.windows_for(f)[0].width)
    state.set_window(123.0, 456.0)  # a window the user set stays when the frame changes
    state.set_frame(0)
    assert (state.window().center, state.window().width) == (123.0, 456.0)
