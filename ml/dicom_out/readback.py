"""Our own DICOM objects read back for the viewer (no Qt): a measurement SR's measurements and a
Parametric Map's heatmap, each with the SOP Instance UID of the image it belongs to.

:func:`read_object` says what a file is: ``("measurements", [PlanarMeasurement...])``,
``("map", MapOverlay)`` or ``None`` (anything else: an image, another SR, not DICOM).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import Dataset, dcmread

from ml.dicom_out.measurements import COMPREHENSIVE_3D_SR, read_measurements
from ml.dicom_out.results import DicomOutError

PARAMETRIC_MAP = "1.2.840.10008.5.1.4.1.1.30"
SR_CLASSES = (COMPREHENSIVE_3D_SR, "1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.88.22")
OVERLAY_CLASSES = (PARAMETRIC_MAP, *SR_CLASSES)  # objects shown over their image, not by themselves


@dataclass
class MapOverlay:
    """A Parametric Map as a heatmap: ``values`` rows x cols in [0, 1] on the referenced image's grid
    (the attributes ``method`` and ``target_label`` are those of ``ml.explain.Heatmap``)."""

    values: np.ndarray
    method: str
    target_label: str
    sop_instance_uid: str  # the image it was computed on
    frame: int = 0


def _referenced_uid(ds: Dataset) -> tuple[str, int]:
    for item in ds.get("PerFrameFunctionalGroupsSequence", [])[:1]:
        for derivation in item.get("DerivationImageSequence", []):
            for src in derivation.get("SourceImageSequence", []):
                frames = src.get("ReferencedFrameNumber")
                frame = int(frames if not hasattr(frames, "__len__") else frames[0]) - 1 if frames else 0
                return str(src.ReferencedSOPInstanceUID), max(frame, 0)
    for ref in ds.get("ReferencedImageSequence", []):
        return str(ref.ReferencedSOPInstanceUID), 0
    for series in ds.get("ReferencedSeriesSequence", []):
        for ref in series.get("ReferencedInstanceSequence", []):
            return str(ref.ReferencedSOPInstanceUID), 0
    raise DicomOutError("This Parametric Map does not name the image it belongs to.")


def read_parametric_map(ds: Dataset) -> MapOverlay:
    """The map's first frame as real-world values scaled to [0, 1] (ours are already in [0, 1])."""
    uid, frame = _referenced_uid(ds)
    try:
        pixels = np.asarray(ds.pixel_array, dtype=np.float32)
    except Exception as exc:  # noqa: BLE001 - a map we cannot decode is one line
        raise DicomOutError(f"The Parametric Map's values cannot be read ({type(exc).__name__}).") from None
    values = pixels[0] if pixels.ndim == 3 else pixels
    method, label, slope, intercept = "Parametric map", "", 1.0, 0.0
    shared = ds.get("SharedFunctionalGroupsSequence", [])
    mappings = shared[0].get("RealWorldValueMappingSequence", []) if shared else []
    if mappings:
        m = mappings[0]
        method = str(m.get("LUTLabel", "") or method)
        label = str(m.get("LUTExplanation", "") or "")
        slope = float(m.get("RealWorldValueSlope", 1.0) or 1.0)
        intercept = float(m.get("RealWorldValueIntercept", 0.0) or 0.0)
    values = values * slope + intercept
    finite = np.isfinite(values)
    values = np.where(finite, values, 0.0)
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    if lo < 0.0 or hi > 1.0:  # another tool's map: show its range as [0, 1]
        values = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
    return MapOverlay(values.astype(np.float32), method, label, uid, frame)


def read_object(path: str | Path) -> tuple[str, object] | None:
    """What ``path`` holds for the viewer (see the module docstring). Bad files are one error."""
    try:
        head = dcmread(path, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - not DICOM: not one of ours
        return None
    sop_class = str(head.get("SOPClassUID", ""))
    if sop_class in SR_CLASSES:
        found = read_measurements(head)
        return ("measurements", found) if found else None
    if sop_class == PARAMETRIC_MAP:
        try:
            full = dcmread(path)
        except Exception as exc:  # noqa: BLE001
            raise DicomOutError(f"{Path(path).name} cannot be read ({type(exc).__name__}).") from None
        return "map", read_parametric_map(full)
    return None
