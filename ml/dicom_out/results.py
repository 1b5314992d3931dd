"""AI results as standard DICOM, written with highdicom. Not for diagnostic use.

- :func:`measurement_report`: a Comprehensive 3D SR holding a TID 1500 measurement report for one
  analysed image: per finding the model's probability and its operating point, the positive
  findings as qualitative evaluations, the algorithm (model name, version, file hash) and our
  software as contributing equipment; VerificationFlag UNVERIFIED; "Not for diagnostic use" in the
  series description and as a comment in the report.
- :func:`parametric_map`: a Parametric Map of a heatmap on the source image's pixel grid (float
  32, a Real World Value Mapping naming the method).

Both go into a new series of the source study and reference the source instance.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import highdicom as hd
import numpy as np
from pydicom import Dataset, dcmread
from pydicom.sr.codedict import codes

from ml import DISCLAIMER, __version__
from ml.errors import CxrError

MANUFACTURER = "CXR Studio"
SCHEME = "99CXRSTUDIO"  # private coding scheme for the model's labels (no standard codes for them)
NOT_FOR_DIAGNOSIS = "Not for diagnostic use"
SR_SERIES_NUMBER = 9901
PM_SERIES_NUMBER = 9902


_D = TypeVar("_D", bound=Dataset)


class DicomOutError(CxrError):
    """An AI result could not be written as DICOM (one readable line)."""


@dataclass(frozen=True)
class Algorithm:
    name: str
    version: str
    sha256: str = ""  # the model file's hash

    @property
    def parameters(self) -> list[str]:
        return [f"sha256={self.sha256}"] if self.sha256 else []


def _label_code(label: str) -> hd.sr.CodedConcept:
    # SH code values: at most 16 characters; a short digest keeps them unique and stable
    value = "L" + hashlib.sha1(label.encode()).hexdigest()[:12].upper()
    return hd.sr.CodedConcept(value=value, scheme_designator=SCHEME, meaning=label[:64])


def _code(value: str, meaning: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value=value, scheme_designator=SCHEME, meaning=meaning)


PROBABILITY = _code("PROB", "Probability of finding")
OPERATING_POINT = _code("OPPOINT", "Operating point")
CHEST_XR = hd.sr.CodedConcept(value="36572-6", scheme_designator="LN", meaning="XR Chest Views")
NO_UNITS = hd.sr.CodedConcept(value="1", scheme_designator="UCUM", meaning="no units")


def read_source(path: str | Path) -> Dataset:
    try:
        return dcmread(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable source is one line
        raise DicomOutError(f"{Path(path).name}: DICOM results need a DICOM source image "
                            f"({type(exc).__name__}).") from None


def _equipment() -> hd.ContributingEquipment:
    return hd.ContributingEquipment(
        manufacturer=MANUFACTURER, purpose_of_reference=codes.DCM.ProcessingEquipment,
        manufacturer_model_name="CXR Studio", software_versions=__version__)


def measurement_report(source: Dataset, prediction, algorithm: Algorithm,  # noqa: ANN001 - Prediction
                       series_uid: str | None = None) -> hd.sr.Comprehensive3DSR:
    """A TID 1500 report of ``prediction`` (an ``ml.inference.predictor.Prediction``) on ``source``."""
    algo = hd.sr.AlgorithmIdentification(name=algorithm.name[:64], version=algorithm.version[:64],
                                         parameters=algorithm.parameters or None)
    thresholds = prediction.thresholds or [None] * len(prediction.labels)
    measurements = []
    for label, probability, threshold in zip(prediction.labels, prediction.probabilities, thresholds,
                                             strict=True):
        measurements.append(hd.sr.Measurement(
            name=hd.sr.CodedConcept(value=PROBABILITY.value, scheme_designator=SCHEME,
                                    meaning=f"Probability of {label}"[:64]),
            value=float(probability), unit=NO_UNITS, algorithm_id=algo))
        if threshold is not None:
            measurements.append(hd.sr.Measurement(
                name=hd.sr.CodedConcept(value=OPERATING_POINT.value, scheme_designator=SCHEME,
                                        meaning=f"Operating point of {label}"[:64]),
                value=float(threshold), unit=NO_UNITS, algorithm_id=algo))
    evaluations = [hd.sr.QualitativeEvaluation(name=codes.DCM.Finding, value=_label_code(label))
                   for label in prediction.positives]
    source_image = hd.sr.SourceImageForMeasurementGroup(
        referenced_sop_class_uid=source.SOPClassUID, referenced_sop_instance_uid=source.SOPInstanceUID,
        referenced_frame_numbers=[prediction.frame + 1] if int(source.get("NumberOfFrames", 1) or 1) > 1
        else None)
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"{algorithm.name} result"[:64]),
        algorithm_id=algo, measurements=measurements, qualitative_evaluations=evaluations or None,
        source_images=[source_image])
    return tid1500_report(
        source, [group], device_name=algorithm.name, device_model=f"{algorithm.name} {algorithm.version}",
        comment=f"{NOT_FOR_DIAGNOSIS}. {DISCLAIMER}", series_uid=series_uid, series_number=SR_SERIES_NUMBER,
        series_description=f"AI results ({algorithm.name}) - {NOT_FOR_DIAGNOSIS}")


def tid1500_report(source: Dataset, groups: list, *, device_name: str, device_model: str, comment: str,  # noqa: ANN001
                   series_uid: str | None, series_number: int, series_description: str) -> hd.sr.Comprehensive3DSR:
    """A Comprehensive 3D SR with a TID 1500 measurement report of ``groups`` about ``source``: a
    device observer, a comment item, UNVERIFIED, complete, Contributing Equipment; new series."""
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name=device_name[:64], manufacturer_name=MANUFACTURER, model_name=device_model[:64]))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=CHEST_XR, imaging_measurements=groups)
    report[0].ContentSequence.append(hd.sr.TextContentItem(
        name=codes.DCM.Comment, value=comment[:1024], relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
    with _quiet_names():
        sr = hd.sr.Comprehensive3DSR(
            evidence=[source], content=report[0], series_instance_uid=series_uid or hd.UID(),
            series_number=series_number, sop_instance_uid=hd.UID(), instance_number=1,
            manufacturer=MANUFACTURER, is_complete=True, is_final=False, is_verified=False,
            contributing_equipment=[_equipment()], series_description=series_description[:64])
    return _drop_invalid_copied(sr)


class _ParametricMap(hd.pm.ParametricMap):
    """highdicom 0.28's ParametricMap for a single-frame source without a Frame of Reference (CR,
    DX, secondary capture: most chest radiographs) indexes frames by Frame Label but leaves the
    frame's Dimension Index Values and Frame Label empty, and its own check then refuses the
    object. Fill them (one frame: index 1) before that check."""

    def _build_luts(self) -> None:
        for item in self.get("PerFrameFunctionalGroupsSequence", []):
            content = item.FrameContentSequence[0]
            if content.get("DimensionIndexValues") in (None, "", []):
                content.DimensionIndexValues = [1]
                content.FrameLabel = "HEATMAP"
        super()._build_luts()


def parametric_map(source: Dataset, heatmap, algorithm: Algorithm, frame: int = 0,  # noqa: ANN001 - Heatmap
                   series_uid: str | None = None) -> hd.pm.ParametricMap:
    """The heatmap (``ml.explain.Heatmap``, on the source's rows x columns) as a float Parametric Map."""
    values = np.asarray(heatmap.values, dtype=np.float32)
    if values.shape != (int(source.Rows), int(source.Columns)):
        raise DicomOutError(f"The heatmap ({values.shape[0]} x {values.shape[1]}) is not on the source "
                            f"image's grid ({source.Rows} x {source.Columns}).")
    mapping = hd.pm.RealWorldValueMapping(
        lut_label=heatmap.method[:16],
        lut_explanation=f"{heatmap.method} evidence for {heatmap.target_label}, scaled to [0, 1]"[:64],
        unit=NO_UNITS, value_range=(0.0, 1.0), slope=1.0, intercept=0.0,
        quantity_definition=hd.sr.CodedConcept(value="HEATMAP", scheme_designator=SCHEME,
                                               meaning=f"{heatmap.method} saliency"[:64]))
    with _quiet_names():
            pm = _ParametricMap(
            source_images=[_with_frame_of_reference(source)], pixel_array=values[np.newaxis], series_instance_uid=series_uid or hd.UID(),
            series_number=PM_SERIES_NUMBER, sop_instance_uid=hd.UID(), instance_number=1,
            manufacturer=MANUFACTURER, manufacturer_model_name=f"{algorithm.name}"[:64],
            software_versions=__version__, device_serial_number=(algorithm.sha256 or "none")[:64],
            contains_recognizable_visual_features=False, real_world_value_mappings=[mapping],
            voi_lut_transformations=[hd.VOILUTTransformation(window_center=0.5, window_width=1.0)],
            content_label="HEATMAP",
            content_description=f"{heatmap.method} heatmap, {NOT_FOR_DIAGNOSIS}"[:64],
            series_description=f"AI heatmap ({heatmap.method}) - {NOT_FOR_DIAGNOSIS}"[:64],
            contributing_equipment=[_equipment()])
    pm.BodyPartExamined = str(source.get("BodyPartExamined", "") or "CHEST")
    if source.get("Laterality"):  # type 2C: present for a paired body part, absent otherwise
        pm.Laterality = source.Laterality
    return _drop_invalid_copied(pm)


@contextmanager
def _quiet_names():  # noqa: ANN202
    """highdicom warns with the patient's name in the message when it is a single component: never
    let a patient name reach the terminal or the log."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*intended person name.*")
        yield


def _drop_invalid_copied(ds: _D) -> _D:
    """Patient/study attributes are copied from the source; drop optional ones whose value is not
    valid for its VR there (e.g. Patient's Age "62" instead of "062Y") rather than repeat the error."""
    age = str(ds.get("PatientAge", "") or "")
    if age and not re.fullmatch(r"\d{3}[DWMY]", age):
        del ds.PatientAge
    return ds


def _with_frame_of_reference(source: Dataset) -> Dataset:
    """The Parametric Map IOD needs a Frame of Reference and plane geometry; a radiograph (CR, DX,
    secondary capture) has none. Give a copy of the source a new frame of reference with the image
    plane at the origin, rows and columns along x and y, and the source's pixel spacing (detector
    spacing when there is no calibrated spacing, else 1 mm): the map then lies on the source's pixel
    grid, pixel for pixel. The copy's SOP Instance UID is the source's, so the map references it."""
    if "FrameOfReferenceUID" in source and "ImageOrientationPatient" in source:
        return source
    ds = Dataset()
    for element in source:
        if element.tag != 0x7FE00010:  # pixel data: highdicom needs only the header
            ds.add(element)
    ds.file_meta = source.file_meta
    spacing = source.get("PixelSpacing") or source.get("ImagerPixelSpacing") or [1.0, 1.0]
    ds.FrameOfReferenceUID = hd.UID()
    ds.PositionReferenceIndicator = ""
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.ImagePositionPatient = [0.0, 0.0, 0.0]
    ds.PixelSpacing = [float(spacing[0]), float(spacing[1])]
    ds.SliceThickness = 1.0
    return ds


def write(dataset: Dataset, folder: str | Path, stem: str) -> Path:
    """Save atomically as ``folder/<stem>.dcm``."""
    from ml.fileio import atomic_path

    dest = Path(folder) / f"{stem}.dcm"
    with atomic_path(dest) as tmp:
        dataset.save_as(tmp, enforce_file_format=True)
    return dest
