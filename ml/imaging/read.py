"""Read DICOM Part 10, PNG and JPEG files into :class:`XRayImage`.

DICOM goes through pydicom 3 with the pylibjpeg plugins (JPEG, JPEG-LS, JPEG 2000, HTJ2K, RLE);
deflated and big-endian syntaxes are handled by pydicom itself. The user's file is only ever
opened for reading.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from ml.errors import (
    CorruptImageError,
    ImagingError,
    MissingCodecError,
    NoPixelDataError,
    NotAnImageError,
    NotDicomError,
    TruncatedPixelDataError,
    UnsupportedTransferSyntaxError,
)
from ml.imaging.image import ImageMeta, PixelSpacing, VoiLut, Window, XRayImage

log = logging.getLogger(__name__)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"

# Transfer syntaxes pydicom 3.0 does not name, and those whose compression loses information.
_EXTRA_SYNTAX_NAMES = {
    "1.2.840.10008.1.2.8.1": "Deflated Image Frame Compression",
    "1.2.840.10008.1.2.4.94": "JPIP Referenced",
    "1.2.840.10008.1.2.4.95": "JPIP Referenced Deflate",
}
LOSSY_SYNTAXES = {
    "1.2.840.10008.1.2.4.50": "JPEG Baseline",
    "1.2.840.10008.1.2.4.51": "JPEG Extended",
    "1.2.840.10008.1.2.4.81": "JPEG-LS near-lossless",
    "1.2.840.10008.1.2.4.91": "JPEG 2000",
    "1.2.840.10008.1.2.4.203": "HTJ2K",
    "1.2.840.10008.1.2.4.100": "MPEG-2",
    "1.2.840.10008.1.2.4.102": "MPEG-4",
    "1.2.840.10008.1.2.4.110": "JPEG XL",
}
# Plugin that decodes each family, to name in a "codec missing" message.
_CODEC_HINT = {
    "1.2.840.10008.1.2.4.5": "pylibjpeg-libjpeg (JPEG)",
    "1.2.840.10008.1.2.4.8": "pylibjpeg-libjpeg (JPEG-LS)",
    "1.2.840.10008.1.2.4.9": "pylibjpeg-openjpeg (JPEG 2000)",
    "1.2.840.10008.1.2.4.20": "pylibjpeg-openjpeg (HTJ2K)",
    "1.2.840.10008.1.2.5": "pylibjpeg-rle (RLE)",
}

NON_IMAGE_SOP_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.88",  # structured reports
    "1.2.840.10008.5.1.4.1.1.11",  # presentation states
    "1.2.840.10008.5.1.4.1.1.104",  # encapsulated PDF/CDA
    "1.2.840.10008.5.1.4.1.1.481",  # RT objects (non-image ones)
    "1.2.840.10008.5.1.4.1.1.66",  # raw data, registration, segmentation surface
    "1.2.840.10008.1.3.10",  # media storage directory (DICOMDIR)
)


def syntax_name(uid: str) -> str:
    if not uid:
        return ""
    if uid in _EXTRA_SYNTAX_NAMES:
        return _EXTRA_SYNTAX_NAMES[uid]
    name = UID(uid).name
    return name if name and name != uid else uid


def sniff_kind(path: str | os.PathLike[str]) -> str:
    """'png', 'jpeg', 'dicom' (with preamble) or 'unknown' from the first bytes."""
    name = Path(path).name
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except FileNotFoundError:
        raise ImagingError(f"{name} does not exist.") from None
    except IsADirectoryError:
        raise NotAnImageError(f"{name} is a folder, not an image file.") from None
    except PermissionError:
        raise ImagingError(f"{name} cannot be read: permission denied.") from None
    except OSError as exc:
        raise ImagingError(f"{name} cannot be read ({exc.strerror or exc}).") from None
    if head.startswith(PNG_MAGIC):
        return "png"
    if head.startswith(JPEG_MAGIC):
        return "jpeg"
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    return "unknown"


def read_dataset(
    path: str | os.PathLike[str], stop_before_pixels: bool = False, defer_size: str | None = None
) -> FileDataset:
    """Read a DICOM file, with or without its 128-byte preamble. Raises NotDicomError.

    ``defer_size`` (e.g. "64 KB") leaves large values such as pixel data unread but present.
    """
    path = os.fspath(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, defer_size=defer_size)
            except InvalidDicomError:
                # No preamble/"DICM": accept it only if it parses into plausible elements.
                ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, defer_size=defer_size,
                                     force=True)
                if not _looks_like_dicom(ds):
                    raise NotDicomError(f"{Path(path).name} is not a DICOM file.") from None
    except NotDicomError:
        raise
    except FileNotFoundError:
        raise ImagingError(f"{Path(path).name} does not exist.") from None
    except IsADirectoryError:
        raise NotAnImageError(f"{Path(path).name} is a folder, not an image file.") from None
    except PermissionError:
        raise ImagingError(f"{Path(path).name} cannot be read: permission denied.") from None
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptImageError(f"{Path(path).name} is damaged and cannot be read as DICOM ({exc}).") from None
    return ds


def _looks_like_dicom(ds: Dataset) -> bool:
    try:
        tags = list(ds.keys())
    except Exception:  # noqa: BLE001 - a garbage parse can fail anywhere
        return False
    if not tags:
        return False
    known = sum(1 for t in tags if t.group in (0x0002, 0x0008, 0x0010, 0x0018, 0x0020, 0x0028))
    return known >= 2 and all(t.group % 2 == 0 or t.group > 8 for t in tags[:3])


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _int(ds: Dataset, keyword: str, default: int | None = None) -> int | None:
    value = ds.get(keyword, None)
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _pair(value: Any) -> tuple[float, float] | None:
    try:
        if value is None or len(value) < 2:
            return None
        row, col = float(value[0]), float(value[1])
    except (TypeError, ValueError):
        return None
    return (row, col) if row > 0 and col > 0 else None


def pixel_spacing(ds: Dataset) -> PixelSpacing | None:
    """Pixel spacing with its source, preferring calibration at the patient (PS3.3 10.7.1.3)."""
    ps = _pair(ds.get("PixelSpacing"))
    if ps:
        return PixelSpacing(ps[0], ps[1], "PixelSpacing")
    ips = _pair(ds.get("ImagerPixelSpacing"))
    if ips:
        try:
            mag = float(ds.get("EstimatedRadiographicMagnificationFactor", 0) or 0)
        except (TypeError, ValueError):
            mag = 0.0
        if mag > 0:
            return PixelSpacing(
                ips[0] / mag, ips[1] / mag, "ImagerPixelSpacing / EstimatedRadiographicMagnificationFactor"
            )
        return PixelSpacing(ips[0], ips[1], "ImagerPixelSpacing")
    nps = _pair(ds.get("NominalScannedPixelSpacing"))
    if nps:
        return PixelSpacing(nps[0], nps[1], "NominalScannedPixelSpacing")
    return None


def meta_from_dataset(ds: Dataset, path: str | os.PathLike[str] = "") -> ImageMeta:
    """Header facts from a dataset (pixel data not needed, not decoded)."""
    fm = getattr(ds, "file_meta", None)
    ts = str(fm.get("TransferSyntaxUID", "")) if fm is not None else ""
    sop_class = _text(ds, "SOPClassUID") or (str(fm.get("MediaStorageSOPClassUID", "")) if fm else "")
    has_pixels = any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))
    lossy_attr = _text(ds, "LossyImageCompression") == "01"
    lossy_reason = ""
    if lossy_attr:
        methods = _text(ds, "LossyImageCompressionMethod")
        lossy_reason = f"LossyImageCompression=01{' (' + methods + ')' if methods else ''}"
    elif ts in LOSSY_SYNTAXES and ts not in ("1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.203"):
        lossy_reason = f"{LOSSY_SYNTAXES[ts]} transfer syntax"
    name = ds.get("PatientName", "")
    return ImageMeta(
        path=os.fspath(path),
        kind="dicom",
        patient_name=str(name).replace("^", " ").strip() if name else "",
        patient_id=_text(ds, "PatientID"),
        patient_sex=_text(ds, "PatientSex"),
        patient_birth_date=_text(ds, "PatientBirthDate"),
        study_uid=_text(ds, "StudyInstanceUID"),
        study_date=_text(ds, "StudyDate"),
        study_time=_text(ds, "StudyTime"),
        study_description=_text(ds, "StudyDescription"),
        accession_number=_text(ds, "AccessionNumber"),
        series_uid=_text(ds, "SeriesInstanceUID"),
        series_number=_int(ds, "SeriesNumber"),
        series_description=_text(ds, "SeriesDescription"),
        sop_class_uid=sop_class,
        sop_class_name=UID(sop_class).name if sop_class else "",
        sop_instance_uid=_text(ds, "SOPInstanceUID"),
        instance_number=_int(ds, "InstanceNumber"),
        modality=_text(ds, "Modality"),
        view_position=_text(ds, "ViewPosition"),
        laterality=_text(ds, "ImageLaterality") or _text(ds, "Laterality"),
        photometric=_text(ds, "PhotometricInterpretation") or "MONOCHROME2",
        samples_per_pixel=_int(ds, "SamplesPerPixel", 1) or 1,
        bits_allocated=_int(ds, "BitsAllocated", 8) or 8,
        bits_stored=_int(ds, "BitsStored", None) or _int(ds, "BitsAllocated", 8) or 8,
        pixel_representation=_int(ds, "PixelRepresentation", 0) or 0,
        rows=_int(ds, "Rows", 0) or 0,
        columns=_int(ds, "Columns", 0) or 0,
        n_frames=_int(ds, "NumberOfFrames", 1) or 1,
        transfer_syntax_uid=ts,
        transfer_syntax_name=syntax_name(ts),
        lossy=bool(lossy_reason),
        lossy_reason=lossy_reason,
        pixel_spacing=pixel_spacing(ds),
        presentation_lut_shape=_text(ds, "PresentationLUTShape"),
        has_pixels=has_pixels,
        float_pixels="FloatPixelData" in ds or "DoubleFloatPixelData" in ds,
    )


def is_non_image(meta: ImageMeta) -> bool:
    return (not meta.has_pixels) and meta.sop_class_uid.startswith(NON_IMAGE_SOP_PREFIXES)


def windows_from_dataset(ds: Dataset) -> list[Window]:
    centers, widths = ds.get("WindowCenter"), ds.get("WindowWidth")
    if centers is None or widths is None:
        return []
    centers = list(centers) if isinstance(centers, pydicom.multival.MultiValue) else [centers]
    widths = list(widths) if isinstance(widths, pydicom.multival.MultiValue) else [widths]
    expl = ds.get("WindowCenterWidthExplanation", "")
    expl = list(expl) if isinstance(expl, pydicom.multival.MultiValue) else [expl] * len(centers)
    function = (_text(ds, "VOILUTFunction") or "LINEAR").upper()
    out = []
    for i, (c, w) in enumerate(zip(centers, widths, strict=False)):
        try:
            c, w = float(c), float(w)
        except (TypeError, ValueError):
            continue
        if w <= 0 or (function == "LINEAR" and w < 1):
            continue
        out.append(Window(c, w, function, str(expl[i]) if i < len(expl) and expl[i] else ""))
    return out


def voi_luts_from_dataset(ds: Dataset) -> list[VoiLut]:
    out = []
    for item in ds.get("VOILUTSequence", []) or []:
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
            out.append(VoiLut(first, bits, data[:n_entries].astype(np.int64), _text(item, "LUTExplanation")))
        except (AttributeError, KeyError, TypeError, ValueError, IndexError):
            log.warning("ignoring an unreadable VOI LUT Sequence item")
    return out


def _decode(ds: FileDataset, meta: ImageMeta) -> np.ndarray:
    name = Path(meta.path).name
    if not meta.has_pixels:
        if is_non_image(meta):
            raise NoPixelDataError(
                f"{name} is a {meta.sop_class_name or 'non-image DICOM object'}, which has no image to show."
            )
        raise TruncatedPixelDataError(
            f"{name} has no pixel data: the file is truncated or is not an image object."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = ds.pixel_array
    except NotImplementedError as exc:
        raise _codec_error(meta, str(exc)) from None
    except RuntimeError as exc:
        msg = str(exc)
        if "plugin" in msg.lower() or "decoder" in msg.lower() or "missing" in msg.lower():
            raise _codec_error(meta, msg) from None
        raise CorruptImageError(f"{name}: the compressed pixel data cannot be decoded ({msg}).") from None
    except (ValueError, EOFError, IndexError) as exc:
        msg = str(exc)
        if "length" in msg.lower() or "truncat" in msg.lower() or "end of" in msg.lower() or isinstance(exc, EOFError):
            raise TruncatedPixelDataError(f"{name}: truncated pixel data (the file ends early).") from None
        raise CorruptImageError(f"{name}: the pixel data is damaged ({msg}).") from None
    except (AttributeError, KeyError, TypeError) as exc:
        raise CorruptImageError(f"{name}: the image header is incomplete ({exc}).") from None
    if meta.photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        arr = apply_color_lut(arr, ds)
        if arr.dtype != np.uint8:
            arr = (arr >> 8).astype(np.uint8)
    return arr


def _codec_error(meta: ImageMeta, detail: str) -> UnsupportedTransferSyntaxError:
    ts = meta.transfer_syntax_uid
    pretty = f"{meta.transfer_syntax_name} ({ts})" if meta.transfer_syntax_name != ts else ts
    hint = next((v for k, v in _CODEC_HINT.items() if ts.startswith(k)), "")
    if hint and ("plugin" in detail.lower() or "missing" in detail.lower()):
        return MissingCodecError(
            f"{Path(meta.path).name}: the {hint} codec is missing, so {pretty} images cannot be decoded.",
            meta.transfer_syntax_name,
            ts,
        )
    return UnsupportedTransferSyntaxError(
        f"{Path(meta.path).name}: transfer syntax {pretty} is not supported by this viewer's decoders.",
        meta.transfer_syntax_name,
        ts,
    )


def _as_frames(arr: np.ndarray, meta: ImageMeta) -> np.ndarray:
    color = meta.samples_per_pixel == 3 or meta.photometric == "PALETTE COLOR"
    if color:
        arr = arr if arr.ndim == 4 else arr[np.newaxis]
    else:
        arr = arr if arr.ndim == 3 else arr[np.newaxis]
    if arr.dtype.byteorder == ">":  # big endian files decode to big-endian arrays
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def read_dicom(path: str | os.PathLike[str]) -> XRayImage:
    ds = read_dataset(path)
    meta = meta_from_dataset(ds, path)
    arr = _as_frames(_decode(ds, meta), meta)
    meta.n_frames = int(arr.shape[0])
    meta.rows, meta.columns = int(arr.shape[1]), int(arr.shape[2])
    if arr.ndim == 4:  # pydicom converts YBR to RGB by default
        meta.photometric = "RGB" if not meta.photometric.startswith("PALETTE") else meta.photometric
        meta.samples_per_pixel = 3
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0) if "RescaleSlope" in ds else 1.0
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0) if "RescaleIntercept" in ds else 0.0
    mlut_seq = ds.get("ModalityLUTSequence")
    return XRayImage(
        meta=meta,
        frames=arr,
        windows=windows_from_dataset(ds),
        voi_luts=voi_luts_from_dataset(ds),
        rescale_slope=slope,
        rescale_intercept=intercept,
        modality_lut=mlut_seq[0] if mlut_seq else None,
        dataset=ds,
    )


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
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
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
    try:
        return read_dicom(path)
    except NotDicomError:
        raise NotAnImageError(
            f"{Path(path).name} is not an image this viewer can open (DICOM, PNG or JPEG)."
        ) from None


def read_meta(path: str | os.PathLike[str]) -> ImageMeta:
    """Header facts only, without decoding pixels (PNG/JPEG: size from the header)."""
    path = os.fspath(path)
    kind = sniff_kind(path)
    if kind in ("png", "jpeg"):
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                w, h = im.size
                mode = im.mode
        except (UnidentifiedImageError, OSError) as exc:
            raise CorruptImageError(f"{Path(path).name} is damaged ({exc}).") from None
        color = mode not in ("L", "P", "1", "LA", "I", "I;16", "I;16B", "I;16L")
        return ImageMeta(
            path=path, kind=kind, rows=h, columns=w, modality="OT",
            photometric="RGB" if color else "MONOCHROME2", samples_per_pixel=3 if color else 1,
            bits_stored=16 if mode.startswith("I") else 8, lossy=kind == "jpeg",
            lossy_reason="JPEG file" if kind == "jpeg" else "",
        )
    # Large values (pixel data) are skipped, not read, but their presence is known exactly.
    ds = read_dataset(path, defer_size="64 KB")
    return meta_from_dataset(ds, path)
