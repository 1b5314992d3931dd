"""Read DICOM Part 10, PNG and JPEG files into :class:`XRayImage`.

DICOM goes through pydicom 3 with the pylibjpeg plugins (JPEG, JPEG-LS, JPEG 2000, HTJ2K, RLE);
deflated and big-endian syntaxes are handled by pydicom itself. Before any pixel is decoded the
one header reader (:func:`ml.imaging.header.read_header`) checks the file (truncation, no pixel
data) and :mod:`ml.imaging.decoding` checks the decoder registry and the size claim. The user's
file is only ever opened for reading.
"""

from __future__ import annotations

import logging
import os
import struct
import warnings
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ml import scrub
from ml.errors import (
    CorruptImageError,
    ImageTooLargeError,
    NoPixelDataError,
    NotAnImageError,
    NotDicomError,
    TruncatedPixelDataError,
)
from ml.imaging import decoding, functional_groups
from ml.imaging.dicom_meta import LOSSY_SYNTAXES as LOSSY_SYNTAXES  # re-exported
from ml.imaging.dicom_meta import get_value, is_non_image, meta_from_dataset, text_of
from ml.imaging.dicom_meta import pixel_spacing as pixel_spacing  # re-exported
from ml.imaging.dicom_meta import syntax_name as syntax_name  # re-exported
from ml.imaging.header import read_header, read_header_and_pixels
from ml.imaging.image import ImageMeta, VoiLut, Window, XRayImage
from ml.imaging.sniff import JPEG_MAGIC as JPEG_MAGIC  # re-exported
from ml.imaging.sniff import PNG_MAGIC as PNG_MAGIC  # re-exported
from ml.imaging.sniff import has_preamble, kind_of, open_regular, sniff_kind

if TYPE_CHECKING:  # pydicom is imported when a DICOM file is read, not before the window shows
    from pydicom.dataset import Dataset, FileDataset

log = logging.getLogger(__name__)

__all__ = [
    "is_non_image", "meta_from_dataset", "read_bitmap", "read_dataset", "read_dicom", "read_image",
    "read_meta", "sniff_kind",
]


def read_dataset(
    path: str | os.PathLike[str], stop_before_pixels: bool = False, defer_size: str | None = None
) -> FileDataset:
    """Read a DICOM file, with or without its 128-byte preamble. Raises NotDicomError.

    ``defer_size`` (e.g. "64 KB") leaves large values such as pixel data unread but present.
    """
    path = os.fspath(path)
    name = Path(path).name
    with open_regular(path) as fh:  # refuses folders, pipes and devices without blocking
        head = fh.read(132)
    preamble = has_preamble(head)
    if kind_of(head) != "dicom":  # the one sniffer decides, as for the header reader
        raise NotDicomError(f"{name} is not a DICOM file.")
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, defer_size=defer_size,
                                 force=not preamble)
            scrub.register_dataset(ds)  # its names and IDs never reach a log (issue 11 item 3)
            if not preamble and not any(k in ds for k in ("SOPClassUID", "StudyInstanceUID", "Rows")):
                raise NotDicomError(f"{name} is not a DICOM file.")  # the header reader's rule too
    except NotDicomError:
        raise
    except InvalidDicomError:
        raise NotDicomError(f"{name} is not a DICOM file.") from None
    except RecursionError:
        raise CorruptImageError(f"{name} is damaged: its sequences are nested too deeply.") from None
    except Exception as exc:  # noqa: BLE001 - a damaged header can fail anywhere in pydicom
        raise CorruptImageError(f"{name} is damaged and cannot be read as DICOM ({type(exc).__name__}).") from None
    except BaseException as exc:
        if decoding.is_panic(exc):
            raise CorruptImageError(f"{name} is damaged and cannot be read as DICOM.") from None
        raise
    return ds


def windows_from_dataset(ds: Dataset) -> list[Window]:
    from pydicom.multival import MultiValue

    centers, widths = get_value(ds, "WindowCenter"), get_value(ds, "WindowWidth")
    if centers is None or widths is None:
        return []
    centers = list(centers) if isinstance(centers, MultiValue) else [centers]
    widths = list(widths) if isinstance(widths, MultiValue) else [widths]
    expl = get_value(ds, "WindowCenterWidthExplanation", "")
    expl = list(expl) if isinstance(expl, MultiValue) else [expl] * len(centers)
    function = (text_of(ds, "VOILUTFunction") or "LINEAR").upper()
    out = []
    for i, (c, w) in enumerate(zip(centers, widths, strict=False)):
        try:
            c, w = float(c), float(w)
        except (TypeError, ValueError, OverflowError):
            continue
        if not (np.isfinite(c) and np.isfinite(w)) or w <= 0 or (function == "LINEAR" and w < 1):
            continue
        out.append(Window(c, w, function, str(expl[i]) if i < len(expl) and expl[i] else ""))
    return out


def voi_luts_from_dataset(ds: Dataset) -> list[VoiLut]:
    out = []
    for item in get_value(ds, "VOILUTSequence", []) or []:
        try:
            desc = item.LUTDescriptor
            n_entries = int(desc[0]) or 65536
            first = int(desc[1])
            bits = int(desc[2])
            raw = item["LUTData"].value
            if isinstance(raw, bytes | bytearray):
                dtype = "<u1" if bits <= 8 and len(raw) == n_entries else "<u2"
                data = np.frombuffer(raw, dtype=dtype)
            else:
                data = np.asarray(raw)
            out.append(VoiLut(first, bits, data[:n_entries].astype(np.int64), text_of(item, "LUTExplanation")))
        except Exception:  # noqa: BLE001 - a damaged LUT is ignored, the image still shows
            log.warning("ignoring an unreadable VOI LUT Sequence item")
    return out


def _check_pixels(meta: ImageMeta) -> None:
    name = Path(meta.path).name
    if not meta.has_pixels:
        if is_non_image(meta):
            raise NoPixelDataError(
                f"{name} is a {meta.sop_class_name or 'non-image DICOM object'}, which has no image to show."
            )
        raise TruncatedPixelDataError(
            f"{name} has no pixel data: the file is truncated or is not an image object."
        )


def read_dicom(path: str | os.PathLike[str]) -> XRayImage:
    path = os.fspath(path)
    header, pixels = read_header_and_pixels(path)
    if header.kind != "dicom":
        raise NotDicomError(f"{Path(path).name} is not a DICOM file.")
    _check_pixels(header)
    decoding.check_decoder(header)
    decoding.check_claim(header, pixels)
    ds = read_dataset(path)
    meta = meta_from_dataset(ds, path)
    _check_pixels(meta)
    decoding.check_claim(meta, None)  # the full header may say more than the partial read
    arr = _as_frames(decoding.decode(ds, meta), meta)
    meta.n_frames = int(arr.shape[0])
    meta.rows, meta.columns = int(arr.shape[1]), int(arr.shape[2])
    if arr.ndim == 4:  # pydicom converts YBR to RGB by default
        meta.photometric = "RGB" if not meta.photometric.startswith("PALETTE") else meta.photometric
        meta.samples_per_pixel = 3
    slope, intercept = _rescale(ds)
    mlut = _modality_lut(ds, arr)
    windows = windows_from_dataset(ds)
    rescales, frame_windows = _functional_groups(ds, meta.n_frames)
    if rescales:
        slope, intercept = rescales[0]
    if frame_windows and frame_windows[0]:
        windows = frame_windows[0]
    return XRayImage(
        meta=meta,
        frames=arr,
        windows=windows,
        voi_luts=voi_luts_from_dataset(ds),
        rescale_slope=slope,
        rescale_intercept=intercept,
        modality_lut=mlut,
        dataset=ds,
        frame_rescales=rescales,
        frame_windows=frame_windows,
    )


def _functional_groups(ds: Dataset, n_frames: int) -> tuple[list[tuple[float, float]], list[list[Window]]]:
    """Per-frame rescale and windows of an enhanced multi-frame image (both empty for others):
    the Pixel Value Transformation and Frame VOI LUT macros, per frame else shared."""
    if not functional_groups.has_functional_groups(ds) or n_frames < 1:
        return [], []
    top = _rescale(ds)
    found = [functional_groups.frame_rescale(ds, i) for i in range(n_frames)]
    rescales = [r or top for r in found] if any(found) else []
    windows = []
    float_pixels = "FloatPixelData" in ds or "DoubleFloatPixelData" in ds
    for i in range(n_frames):
        item = functional_groups.frame_item(ds, i, "FrameVOILUTSequence")
        own = windows_from_dataset(item) if item is not None else []
        if float_pixels:  # LINEAR's -0.5/-1 steps are for integer values: a float map (e.g. a
            # parametric map's 0.5/1 window over [0, 1]) is meant linearly over the window
            own = [replace(w, function="LINEAR_EXACT") if w.function == "LINEAR" else w for w in own]
        windows.append(own)
    return rescales, (windows if any(windows) else [])


def _modality_lut(ds: Dataset, arr: np.ndarray) -> Dataset | None:
    """The Modality LUT Sequence item, if pydicom can apply it (tried on one pixel); a damaged
    one is ignored with a warning so that the image still shows."""
    seq = get_value(ds, "ModalityLUTSequence")
    if not seq or arr.ndim != 3:
        return None
    try:
        from pydicom.pixels import apply_modality_lut

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            apply_modality_lut(arr[0, :1, :1], ds)
        return seq[0]
    except Exception:  # noqa: BLE001 - any damage in the LUT: show the stored values
        log.warning("ignoring an unreadable Modality LUT Sequence")
        return None


def _rescale(ds: Dataset) -> tuple[float, float]:
    try:
        slope = float(get_value(ds, "RescaleSlope", 1.0) or 1.0) if "RescaleSlope" in ds else 1.0
        intercept = float(get_value(ds, "RescaleIntercept", 0.0) or 0.0) if "RescaleIntercept" in ds else 0.0
    except (TypeError, ValueError, OverflowError):
        return 1.0, 0.0
    if not (np.isfinite(slope) and np.isfinite(intercept)) or slope == 0:
        return 1.0, 0.0
    return slope, intercept


def _as_frames(arr: np.ndarray, meta: ImageMeta) -> np.ndarray:
    color = meta.samples_per_pixel == 3 or meta.photometric == "PALETTE COLOR"
    if color:
        arr = arr if arr.ndim == 4 else arr[np.newaxis]
    else:
        arr = arr if arr.ndim == 3 else arr[np.newaxis]
    if arr.dtype.byteorder == ">":  # big endian files decode to big-endian arrays
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def read_bitmap(path: str | os.PathLike[str]) -> XRayImage:
    """PNG or JPEG (8 or 16 bit, grey or colour) via Pillow."""
    from PIL import Image, UnidentifiedImageError

    path = os.fspath(path)
    name = Path(path).name
    try:
        with Image.open(path) as im:
            im.load()
            kind = "png" if im.format == "PNG" else "jpeg"
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im).astype(np.uint16 if mode.startswith("I;16") else np.int32)
                if arr.dtype == np.int32 and arr.min() >= 0 and arr.max() < 65536:
                    arr = arr.astype(np.uint16)
                bits = 16
            elif mode in ("L", "P", "1", "LA"):
                arr = np.asarray(im.convert("L"))
                bits = 8
            else:
                rgb = np.asarray(im.convert("RGB"))
                # Grey images saved as RGB stay grey (most exported radiographs are).
                if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
                    arr = np.ascontiguousarray(rgb[..., 0])
                else:
                    arr = rgb
                bits = 8
    except Image.DecompressionBombError:
        raise ImageTooLargeError(
            f"{name} claims more than {2 * (Image.MAX_IMAGE_PIXELS or 0):,} pixels: not decoded."
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
        raise CorruptImageError(f"{name} is damaged and cannot be decoded ({exc}).") from None
    color = arr.ndim == 3
    meta = ImageMeta(
        path=path,
        kind=kind,
        photometric="RGB" if color else "MONOCHROME2",
        samples_per_pixel=3 if color else 1,
        bits_allocated=16 if bits == 16 else 8,
        bits_stored=bits,
        rows=int(arr.shape[0]),
        columns=int(arr.shape[1]),
        n_frames=1,
        lossy=kind == "jpeg",
        lossy_reason="JPEG file" if kind == "jpeg" else "",
        modality="OT",
    )
    return XRayImage(meta=meta, frames=arr[np.newaxis])


def read_image(path: str | os.PathLike[str]) -> XRayImage:
    """Read any supported file. Raises an :class:`ImagingError` with a readable message."""
    path = os.fspath(path)
    kind = sniff_kind(path)
    if kind in ("png", "jpeg"):
        return read_bitmap(path)
    if kind == "zip":
        raise NotAnImageError(f"{Path(path).name} is a ZIP archive: open it as a folder to see its images.")
    if kind == "empty":
        raise NotAnImageError(f"{Path(path).name} is empty.")
    try:
        return read_dicom(path)
    except NotDicomError:
        raise NotAnImageError(
            f"{Path(path).name} is not an image this viewer can open (DICOM, PNG or JPEG)."
        ) from None
    except NotAnImageError as exc:
        if "not a DICOM or image file" in str(exc):
            raise NotAnImageError(
                f"{Path(path).name} is not an image this viewer can open (DICOM, PNG or JPEG)."
            ) from None
        raise


def read_meta(path: str | os.PathLike[str]) -> ImageMeta:
    """Header facts only, without decoding pixels: the one header reader
    (:func:`ml.imaging.header.read_header`), so a truncated file fails here as everywhere."""
    return read_header(path)
