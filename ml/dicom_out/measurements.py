"""The viewer's measurements as a DICOM SR (TID 1500 measurement report), and read back. No Qt.

One planar ROI measurement group (TID 1410) per measurement, in a Comprehensive 3D SR of a new
series in the source study, referencing the source instance (and frame):

=========  ==========================  ===============================================
kind       image region (SCOORD)       measurements (UCUM units)
=========  ==========================  ===============================================
distance   POLYLINE, the 2 ends        Length in mm (``{px}`` without pixel spacing)
angle      POLYLINE, A, vertex, C      Angle in deg
rect       POLYLINE, closed (5 points)  Area in mm2 (``{px2}``), Mean and SD of the pixel values
ellipse    ELLIPSE, 4 axis end points  as rect
=========  ==========================  ===============================================

Coordinates are image pixel coordinates (column, row) with the top-left corner of the top-left
pixel at (0, 0), which is both DICOM's SCOORD convention and the viewer's. VerificationFlag
UNVERIFIED and "Not for diagnostic use" in the series description and the report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom import Dataset, dcmread
from pydicom.multival import MultiValue
from pydicom.sr.codedict import codes

from ml import DISCLAIMER, __version__
from ml.dicom_out.results import (
    NOT_FOR_DIAGNOSIS,
    DicomOutError,
    tid1500_report,
)

MEASUREMENT_SERIES_NUMBER = 9903
KINDS = ("distance", "angle", "rect", "ellipse")
TRACKING_PREFIX = "CXR Studio "  # tracking identifiers read "CXR Studio distance 1"
COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"

Point = tuple[float, float]


def _ucum(value: str, meaning: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value=value, scheme_designator="UCUM", meaning=meaning)


MM = _ucum("mm", "millimeter")
MM2 = _ucum("mm2", "square millimeter")
DEG = _ucum("deg", "degree")
PX = _ucum("{px}", "pixels")
PX2 = _ucum("{px2}", "square pixels")
NO_UNITS = _ucum("1", "no units")
HU = _ucum("[hnsf'U]", "Hounsfield unit")
CHEST_XR = hd.sr.CodedConcept(value="36572-6", scheme_designator="LN", meaning="XR Chest Views")


@dataclass
class PlanarMeasurement:
    """A measurement on one image, Qt-free: the viewer's ``Measurement`` as data.

    ``numbers`` uses the viewer's keys: distance ``mm`` (or ``px``), angle ``deg``, ROI ``area_mm2``
    (or ``area_px``), ``mean``, ``sd``. ``sop_instance_uid``/``frame`` (0-based) say which image.
    """

    kind: str
    points: list[Point]
    numbers: dict[str, float] = field(default_factory=dict)
    unit: str = ""  # of the ROI's pixel values ("HU" or "")
    sop_instance_uid: str = ""
    frame: int = 0


def _region(m: PlanarMeasurement) -> tuple[str, np.ndarray]:
    if m.kind in ("distance", "angle"):
        n = 2 if m.kind == "distance" else 3
        if len(m.points) < n:
            raise DicomOutError(f"A {m.kind} measurement needs {n} points.")
        return "POLYLINE", np.asarray(m.points[:n], dtype=float)
    (xa, ya), (xb, yb) = m.points[:2]
    left, right, top, bottom = min(xa, xb), max(xa, xb), min(ya, yb), max(ya, yb)
    if m.kind == "rect":
        pts = [(left, top), (right, top), (right, bottom), (left, bottom), (left, top)]
        return "POLYLINE", np.asarray(pts, dtype=float)  # closed: 2D SCOORD has no POLYGON
    if m.kind == "ellipse":
        cx, cy, a, b = (left + right) / 2, (top + bottom) / 2, (right - left) / 2, (bottom - top) / 2
        horizontal = [(cx - a, cy), (cx + a, cy)]
        vertical = [(cx, cy - b), (cx, cy + b)]
        pts = horizontal + vertical if a >= b else vertical + horizontal  # major axis first
        return "ELLIPSE", np.asarray(pts, dtype=float)
    raise DicomOutError(f"Unknown measurement kind {m.kind!r}.")


def _values(m: PlanarMeasurement) -> list[tuple[hd.sr.CodedConcept, float, hd.sr.CodedConcept]]:
    n = m.numbers

    def finite(key: str) -> bool:
        return key in n and math.isfinite(float(n[key]))

    if m.kind == "distance":
        return [(codes.SCT.Length, n["mm"], MM)] if finite("mm") else [(codes.SCT.Length, n["px"], PX)]
    if m.kind == "angle":
        return [(codes.DCM.Angle, n["deg"], DEG)] if finite("deg") else []
    out = [(codes.SCT.Area, n["area_mm2"], MM2) if finite("area_mm2") else (codes.SCT.Area, n["area_px"], PX2)]
    unit = HU if m.unit == "HU" else NO_UNITS
    out += [(code, n[key], unit) for key, code in (("mean", codes.SCT.Mean), ("sd", codes.SCT.StandardDeviation))
            if finite(key)]
    return out


def measurement_sr(source: Dataset, measurements: list[PlanarMeasurement],
                   series_uid: str | None = None) -> hd.sr.Comprehensive3DSR:
    """A TID 1500 report of ``measurements`` made on ``source`` (one group per measurement)."""
    if not measurements:
        raise DicomOutError("There are no measurements on this image to save.")
    multiframe = int(source.get("NumberOfFrames", 1) or 1) > 1
    groups = []
    for i, m in enumerate(measurements, 1):
        graphic_type, data = _region(m)
        frames = [m.frame + 1] if multiframe else None
        region = hd.sr.ImageRegion(
            graphic_type=graphic_type, graphic_data=data,
            source_image=hd.sr.SourceImageForRegion(
                referenced_sop_class_uid=source.SOPClassUID, referenced_sop_instance_uid=source.SOPInstanceUID,
                referenced_frame_numbers=frames))
        values = [hd.sr.Measurement(name=name, value=float(value), unit=unit) for name, value, unit in _values(m)]
        groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"{TRACKING_PREFIX}{m.kind} {i}"),
            referenced_region=region, measurements=values or None))
    return tid1500_report(
        source, groups, device_name="CXR Studio viewer", device_model=f"CXR Studio {__version__}",
        comment=f"{NOT_FOR_DIAGNOSIS}. Measurements made in CXR Studio. {DISCLAIMER}", series_uid=series_uid,
        series_number=MEASUREMENT_SERIES_NUMBER, series_description=f"Measurements - {NOT_FOR_DIAGNOSIS}")


# ---------------------------------------------------------------------------------- reading back
def _concept(item: Dataset) -> tuple[str, str]:
    code = item.ConceptNameCodeSequence[0] if "ConceptNameCodeSequence" in item else None
    return (str(code.CodeValue), str(code.CodingSchemeDesignator)) if code is not None else ("", "")


def _walk(items) -> list[Dataset]:  # noqa: ANN001 - a content sequence
    out, stack = [], list(items)
    while stack:
        item = stack.pop(0)
        out.append(item)
        stack.extend(item.get("ContentSequence", []))
    return out


_NUMBER_KEYS = {  # (concept code, scheme, has spacing) -> key in PlanarMeasurement.numbers
    ("410668003", "SCT"): ("mm", "px"), ("110859", "DCM"): ("deg", "deg"), ("42798000", "SCT"): ("area_mm2", "area_px"),
    ("373098007", "SCT"): ("mean", "mean"), ("386136009", "SCT"): ("sd", "sd"),
}


def _kind(graphic_type: str, points: list[Point], tracking: str) -> str | None:
    if tracking.startswith(TRACKING_PREFIX):
        word = tracking[len(TRACKING_PREFIX):].split(" ")[0]
        if word in KINDS:
            return word
    if graphic_type == "POLYLINE":
        closed = len(points) > 3 and points[0] == points[-1]
        return "rect" if closed else {2: "distance", 3: "angle"}.get(len(points))
    return "ellipse" if graphic_type == "ELLIPSE" else None


def _group_measurement(group: Dataset) -> PlanarMeasurement | None:
    items = _walk(group.get("ContentSequence", []))
    scoord = next((i for i in items if i.get("ValueType") == "SCOORD"), None)
    if scoord is None:
        return None
    data = [float(v) for v in scoord.GraphicData]
    points = list(zip(data[0::2], data[1::2], strict=True))
    graphic_type = str(scoord.GraphicType)
    tracking = next((str(i.TextValue) for i in items
                     if i.get("ValueType") == "TEXT" and _concept(i) == ("112039", "DCM")), "")
    kind = _kind(graphic_type, points, tracking)
    image = next((i for i in _walk(scoord.get("ContentSequence", [])) if i.get("ValueType") == "IMAGE"), None)
    if kind is None or image is None:
        return None
    ref = image.ReferencedSOPSequence[0]
    frames = ref.get("ReferencedFrameNumber")
    if frames in (None, ""):
        frame = 0
    else:
        frame = int(frames[0] if isinstance(frames, MultiValue) else frames) - 1
    if kind in ("rect", "ellipse"):
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        points = [(min(xs), min(ys)), (max(xs), max(ys))]
    m = PlanarMeasurement(kind, points, sop_instance_uid=str(ref.ReferencedSOPInstanceUID), frame=max(frame, 0))
    for item in items:
        if item.get("ValueType") != "NUM" or "MeasuredValueSequence" not in item or not item.MeasuredValueSequence:
            continue
        value = item.MeasuredValueSequence[0]
        keys = _NUMBER_KEYS.get(_concept(item))
        if keys is None:
            continue
        unit = str(value.MeasurementUnitsCodeSequence[0].CodeValue)
        m.numbers[keys[1] if unit.startswith("{px") else keys[0]] = float(value.NumericValue)
        if unit == "[hnsf'U]":
            m.unit = "HU"
    return m


def is_measurement_sr(ds: Dataset) -> bool:
    return str(ds.get("SOPClassUID", "")) == COMPREHENSIVE_3D_SR and "ContentSequence" in ds


def read_measurements(source: str | Path | Dataset) -> list[PlanarMeasurement]:
    """The planar ROI measurements of a TID 1500 SR (ours or another tool's with the same layout)."""
    if isinstance(source, Dataset):
        ds = source
    else:
        try:
            ds = dcmread(source)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is one line
            raise DicomOutError(f"{Path(source).name} cannot be read as DICOM ({type(exc).__name__}).") from None
    if "ContentSequence" not in ds:
        raise DicomOutError("This DICOM object is not a structured report with measurements.")
    out = []
    for item in _walk(ds.ContentSequence):
        if item.get("ValueType") == "CONTAINER" and _concept(item) == ("125007", "DCM"):
            m = _group_measurement(item)
            if m is not None:
                out.append(m)
    return out
