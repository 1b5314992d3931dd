"""Reading and displaying real and synthetic images the way the DICOM standard says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from ml.errors import (
    CxrError,
    NoPixelDataError,
    NotAnImageError,
    TruncatedPixelDataError,
    UnsupportedTransferSyntaxError,
)
from ml.imaging.display import auto_window, default_voi, render, to_unit, window_to_unit
from ml.imaging.image import Window
from ml.imaging.read import read_image, read_meta


def make_dicom(path: Path, pixels: np.ndarray, preamble: bool = True, **attrs) -> Path:
    """A minimal valid grayscale DICOM file (Secondary Capture) with the given attributes."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.Modality = "Test^Phantom", "P1", "DX"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1 if pixels.dtype == np.int16 else 0
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=preamble)
    if not preamble:  # strip the 128-byte preamble and "DICM" along with the file meta group
        raw = path.read_bytes()
        assert not raw.startswith(b"\0" * 128 + b"DICM")
    return path


# ------------------------------------------------------------------ real files
def test_every_shared_file_reads_or_gives_a_clear_error(dicom_dir: Path) -> None:
    ok, errors = [], {}
    for path in sorted(dicom_dir.glob("*.dcm")):
        try:
            image = read_image(path)
            out = render(image)
            assert out.dtype == np.uint8 and out.shape[:2] == image.shape
            ok.append(path.name)
        except CxrError as exc:
            errors[path.name] = str(exc)
    assert set(errors) == {"liver_deflate.dcm", "emri_small_jpeg_2k_lossless_too_short.dcm"}, errors
    assert "Deflated Image Frame Compression" in errors["liver_deflate.dcm"]
    assert "truncated" in errors["emri_small_jpeg_2k_lossless_too_short.dcm"]
    assert len(ok) == 19


def test_error_types_name_the_problem(dicom_dir: Path) -> None:
    with pytest.raises(UnsupportedTransferSyntaxError) as exc:
        read_image(dicom_dir / "liver_deflate.dcm")
    assert exc.value.syntax_uid == "1.2.840.10008.1.2.8.1"
    with pytest.raises(TruncatedPixelDataError):
        read_image(dicom_dir / "emri_small_jpeg_2k_lossless_too_short.dcm")


def test_monochrome1_renders_as_inverse_of_monochrome2(dicom_dir: Path) -> None:
    m2 = render(read_image(dicom_dir / "rsna_cxr_pa.dcm")).astype(int)
    m1 = render(read_image(dicom_dir / "rsna_cxr_pa_monochrome1.dcm")).astype(int)
    assert np.abs(m1 + m2 - 255).max() <= 1
    assert abs(m2.mean() - m1.mean()) > 50  # really different on screen


def test_radiograph_metadata(dicom_dir: Path) -> None:
    meta = read_meta(dicom_dir / "rsna_cxr_pa.dcm")
    assert (meta.rows, meta.columns, meta.modality, meta.view_position) == (1024, 1024, "CR", "PA")
    assert meta.pixel_spacing is not None and meta.pixel_spacing.row_mm == pytest.approx(0.168)
    assert meta.pixel_spacing.source == "PixelSpacing"
    assert meta.lossy and "JPEG Baseline" in meta.transfer_syntax_name
    j2kr, j2ki = read_meta(dicom_dir / "RG3_J2KR.dcm"), read_meta(dicom_dir / "RG3_J2KI.dcm")
    assert not j2kr.lossy and j2ki.lossy
    assert j2kr.photometric == "MONOCHROME1" and j2kr.inverted and j2kr.bits_stored == 10
    assert j2kr.pixel_spacing is None


def test_multiframe_and_byte_order(dicom_dir: Path) -> None:
    rle = read_image(dicom_dir / "emri_small_RLE.dcm")
    big = read_image(dicom_dir / "emri_small_big_endian.dcm")
    j2k = read_image(dicom_dir / "emri_small_jpeg_2k_lossless.dcm")
    assert rle.n_frames == big.n_frames == j2k.n_frames == 10
    assert np.array_equal(rle.frames, big.frames) and np.array_equal(rle.frames, j2k.frames)
    assert not np.array_equal(render(rle, frame=0), render(rle, frame=5))
    with pytest.raises(CxrError, match="Frame 11 does not exist"):
        render(rle, frame=10)


def test_colour_and_float_images(dicom_dir: Path) -> None:
    rgb = read_image(dicom_dir / "SC_rgb_2frame.dcm")
    assert rgb.is_color and rgb.frames.shape == (2, 100, 100, 3)
    assert render(rgb, 1).shape == (100, 100, 3)
    htj2k = read_image(dicom_dir / "HTJ2KLossless_08_RGB.dcm")
    assert render(htj2k).shape == (480, 640, 3)
    flt = read_image(dicom_dir / "parametric_map_float.dcm")
    assert flt.frames.dtype.kind == "f"
    out = render(flt)
    # its Frame VOI LUT window (0.5, 1: the [0, 1] range, linear for float values) is used
    assert (flt.windows[0].center, flt.windows[0].width) == (0.5, 1.0)
    assert out.min() == 0 and out.max() == round(float(flt.frames.max()) * 255)


def test_lut_sequences_are_used(dicom_dir: Path) -> None:
    vlut = read_image(dicom_dir / "vlut_04.dcm")
    assert not vlut.windows and vlut.voi_luts
    voi = default_voi(vlut)
    expected = vlut.voi_luts[0].data[np.clip(vlut.frames[0].astype(int) - voi.first_mapped, 0, None)]
    ours = to_unit(vlut)
    top = expected.max()
    assert np.allclose(ours * (2 ** voi.bits - 1), expected, atol=0.5) or np.allclose(ours * top, expected, atol=0.5)
    mlut = read_image(dicom_dir / "mlut_18.dcm")
    assert mlut.modality_lut is not None


# ------------------------------------------------------------------ synthetic files
def test_file_without_preamble_is_read(tmp_path: Path) -> None:
    pixels = (np.arange(64 * 48, dtype=np.uint16).reshape(64, 48) % 4000)
    path = make_dicom(tmp_path / "nopreamble.dcm", pixels, preamble=False)
    image = read_image(path)
    assert np.array_equal(image.frames[0], pixels)


def test_negative_slope_and_window_functions(tmp_path: Path) -> None:
    pixels = np.tile(np.arange(0, 1000, 10, dtype=np.uint16), (20, 1))
    path = make_dicom(tmp_path / "neg.dcm", pixels, RescaleSlope=-1, RescaleIntercept=1000,
                      WindowCenter=500, WindowWidth=200)
    image = read_image(path)
    out = render(image)
    # value v maps to 1000 - v: high stored values are dark
    assert out[0, 0] == 255 and out[0, -1] == 0
    center = np.argmin(np.abs(1000 - pixels[0].astype(float) - 500))
    assert abs(int(out[0, center]) - 128) <= 2
    x = np.array([400.0, 500.0, 600.0])
    assert np.allclose(window_to_unit(x, Window(500, 200, "SIGMOID")), 1 / (1 + np.exp(-4 * (x - 500) / 200)))
    assert np.allclose(window_to_unit(x, Window(500, 200, "LINEAR_EXACT")), [0.0, 0.5, 1.0])


def test_imager_pixel_spacing_corrected_by_magnification(tmp_path: Path) -> None:
    pixels = np.zeros((8, 8), np.uint16)
    path = make_dicom(tmp_path / "ips.dcm", pixels, ImagerPixelSpacing=[0.2, 0.2],
                      EstimatedRadiographicMagnificationFactor=1.25)
    spacing = read_meta(path).pixel_spacing
    assert spacing.row_mm == pytest.approx(0.16) and "EstimatedRadiographicMagnificationFactor" in spacing.source
    path2 = make_dicom(tmp_path / "ips2.dcm", pixels, ImagerPixelSpacing=[0.2, 0.2])
    assert read_meta(path2).pixel_spacing.source == "ImagerPixelSpacing"


def test_auto_window_ignores_black_border() -> None:
    rng = np.random.default_rng(0)
    body = rng.normal(2000, 200, (200, 200)).clip(1000, 3000).astype(np.uint16)
    framed = np.zeros((300, 300), np.uint16)
    framed[50:250, 50:250] = body
    w = auto_window(framed)
    assert w.low > 1000  # a min/max or whole-image percentile window would start at 0
    assert w.high < 3200


def test_non_image_object_is_listed_not_shown(tmp_path: Path) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "SR"
    ds.save_as(tmp_path / "sr.dcm", enforce_file_format=True)
    with pytest.raises(NoPixelDataError, match="no image to show"):
        read_image(tmp_path / "sr.dcm")


def test_png_and_jpeg(tmp_path: Path, shared_data: Path) -> None:
    grey16 = (np.arange(120 * 80, dtype=np.uint32).reshape(120, 80) * 5 % 65535).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    im16 = read_image(tmp_path / "g16.png")
    assert im16.meta.bits_stored == 16 and np.array_equal(im16.frames[0], grey16)
    nih = read_image(next((shared_data / "cxr" / "nih").glob("*.png")))
    assert nih.shape == (512, 512) and not nih.is_color  # the shipped NIH PNGs are 512 px
    jpg = read_image(next((shared_data / "cxr" / "padchest").glob("*.jpg")))
    assert jpg.meta.kind == "jpeg" and jpg.meta.lossy


def test_not_an_image(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello, this is not an image\n" * 20)
    with pytest.raises(NotAnImageError, match="not an image"):
        read_image(tmp_path / "notes.txt")
    (tmp_path / "noise.dcm").write_bytes(np.random.default_rng(1).bytes(4096))
    with pytest.raises(CxrError):
        read_image(tmp_path / "noise.dcm")


def test_reading_never_modifies_the_file(dicom_dir: Path) -> None:
    path = dicom_dir / "rsna_cxr_pa.dcm"
    before = path.read_bytes()
    render(read_image(path))
    assert path.read_bytes() == before
    assert pydicom.dcmread(path).PatientID  # still a valid file


def test_deflated_explicit_vr_file(tmp_path: Path) -> None:
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    pixels = (np.arange(40 * 30, dtype=np.uint16).reshape(40, 30) * 3)
    path = make_dicom(tmp_path / "plain.dcm", pixels)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(tmp_path / "deflated.dcm", enforce_file_format=True)
    assert len((tmp_path / "deflated.dcm").read_bytes()) < len(path.read_bytes())  # really deflated
    image = read_image(tmp_path / "deflated.dcm")
    assert "Deflate" in image.meta.transfer_syntax_name and np.array_equal(image.frames[0], pixels)
