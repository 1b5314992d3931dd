"""DICOM header elements -> :class:`ImageMeta` (no pixel data needed, none decoded).

Shared by the one header reader (:mod:`ml.imaging.header`) and the full reader
(:mod:`ml.imaging.read`), so both describe a file with the same facts.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ml.imaging.functional_groups import frame_item
from ml.imaging.image import ImageMeta, PixelSpacing

if TYPE_CHECKING:  # a dataset arrives with pydicom imported; this module does not import it first
    from pydicom.dataset import Dataset

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
    name = uid_name(uid)
    return name if name and name != uid else uid


def uid_name(uid: str) -> str:
    """pydicom's name of a UID ("CR Image Storage"); the UID itself when it has none."""
    from pydicom.uid import UID

    return str(UID(uid).name)


def get_value(ds: Dataset, keyword: str, default: Any = None) -> Any:
    """``ds.get(keyword)``, with a value that cannot be converted (damaged bytes, wrong VR)
    treated as absent: pydicom converts values lazily, on first access."""
    try:
        return ds.get(keyword, default)
    except Exception:  # noqa: BLE001 - any conversion failure means "no usable value"
        return default


def text_of(ds: Dataset, keyword: str) -> str:
    value = get_value(ds, keyword, "")
    if value is None:
        return ""
    try:
        from pydicom.multival import MultiValue

        if isinstance(value, MultiValue):
            return "\\".join(str(v) for v in value)
        return str(value).strip()
    except Exception:  # noqa: BLE001 - undecodable text is treated as absent
        return ""


def _orientation_of(ds: Dataset) -> tuple[str, ...]:
    """Patient Orientation (0020,0020) as its values, e.g. ("L", "F"); () when absent."""
    text = text_of(ds, "PatientOrientation")
    return tuple(v.strip() for v in text.split("\\")) if text else ()


def int_of(ds: Dataset, keyword: str, default: int | None = None) -> int | None:
    value = get_value(ds, keyword, None)
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError, OverflowError):
        return default


def _pair(value: Any) -> tuple[float, float] | None:
    try:
        if value is None or len(value) < 2:
            return None
        row, col = float(value[0]), float(value[1])
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    return (row, col) if row > 0 and col > 0 else None


def pixel_spacing(ds: Dataset, frame: int = 0) -> PixelSpacing | None:
    """Pixel spacing with its source, preferring calibration at the patient (PS3.3 10.7.1.3).

    Enhanced multi-frame images keep it in the Pixel Measures macro of the functional groups
    (per frame, else shared), which wins over a top-level value there.
    """
    measures = frame_item(ds, frame, "PixelMeasuresSequence")
    ps = _pair(get_value(measures, "PixelSpacing")) if measures is not None else None
    if ps:
        return PixelSpacing(ps[0], ps[1], "PixelSpacing")
    ps = _pair(get_value(ds, "PixelSpacing"))
    if ps:
        return PixelSpacing(ps[0], ps[1], "PixelSpacing")
    ips = _pair(get_value(ds, "ImagerPixelSpacing"))
    if ips:
        try:
            mag = float(get_value(ds, "EstimatedRadiographicMagnificationFactor", 0) or 0)
        except (TypeError, ValueError, OverflowError):
            mag = 0.0
        if mag > 0:
            return PixelSpacing(
                ips[0] / mag, ips[1] / mag, "ImagerPixelSpacing / EstimatedRadiographicMagnificationFactor"
            )
        return PixelSpacing(ips[0], ips[1], "ImagerPixelSpacing")
    nps = _pair(get_value(ds, "NominalScannedPixelSpacing"))
    if nps:
        return PixelSpacing(nps[0], nps[1], "NominalScannedPixelSpacing")
    return None


def meta_from_dataset(ds: Dataset, path: str | os.PathLike[str] = "") -> ImageMeta:
    """Header facts from a dataset (pixel data not needed, not decoded)."""
    fm = getattr(ds, "file_meta", None)
    ts = text_of(fm, "TransferSyntaxUID") if fm is not None else ""
    sop_class = text_of(ds, "SOPClassUID") or (text_of(fm, "MediaStorageSOPClassUID") if fm is not None else "")
    has_pixels = any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))
    lossy_attr = text_of(ds, "LossyImageCompression") == "01"
    lossy_reason = ""
    if lossy_attr:
        methods = text_of(ds, "LossyImageCompressionMethod")
        lossy_reason = f"LossyImageCompression=01{' (' + methods + ')' if methods else ''}"
    elif ts in LOSSY_SYNTAXES and ts not in ("1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.203"):
        lossy_reason = f"{LOSSY_SYNTAXES[ts]} transfer syntax"
    name = text_of(ds, "PatientName")
    return ImageMeta(
        path=os.fspath(path),
        kind="dicom",
        patient_name=name.replace("^", " ").strip(),
        patient_id=text_of(ds, "PatientID"),
        patient_sex=text_of(ds, "PatientSex"),
        patient_birth_date=text_of(ds, "PatientBirthDate"),
        study_uid=text_of(ds, "StudyInstanceUID"),
        study_date=text_of(ds, "StudyDate"),
        study_time=text_of(ds, "StudyTime"),
        study_description=text_of(ds, "StudyDescription"),
        accession_number=text_of(ds, "AccessionNumber"),
        series_uid=text_of(ds, "SeriesInstanceUID"),
        series_number=int_of(ds, "SeriesNumber"),
        series_description=text_of(ds, "SeriesDescription"),
        sop_class_uid=sop_class,
        sop_class_name=uid_name(sop_class) if sop_class else "",
        sop_instance_uid=text_of(ds, "SOPInstanceUID"),
        instance_number=int_of(ds, "InstanceNumber"),
        modality=text_of(ds, "Modality"),
        view_position=text_of(ds, "ViewPosition"),
        laterality=text_of(ds, "ImageLaterality") or text_of(ds, "Laterality"),
        patient_orientation=_orientation_of(ds),
        photometric=text_of(ds, "PhotometricInterpretation") or "MONOCHROME2",
        samples_per_pixel=int_of(ds, "SamplesPerPixel", 1) or 1,
        bits_allocated=int_of(ds, "BitsAllocated", 8) or 8,
        bits_stored=int_of(ds, "BitsStored", None) or int_of(ds, "BitsAllocated", 8) or 8,
        pixel_representation=int_of(ds, "PixelRepresentation", 0) or 0,
        rows=int_of(ds, "Rows", 0) or 0,
        columns=int_of(ds, "Columns", 0) or 0,
        n_frames=int_of(ds, "NumberOfFrames", 1) or 1,
        transfer_syntax_uid=ts,
        transfer_syntax_name=syntax_name(ts),
        lossy=bool(lossy_reason),
        lossy_reason=lossy_reason,
        pixel_spacing=pixel_spacing(ds),
        presentation_lut_shape=text_of(ds, "PresentationLUTShape"),
        has_pixels=has_pixels,
        float_pixels="FloatPixelData" in ds or "DoubleFloatPixelData" in ds,
    )


def is_non_image(meta: ImageMeta) -> bool:
    return (not meta.has_pixels) and meta.sop_class_uid.startswith(NON_IMAGE_SOP_PREFIXES)
