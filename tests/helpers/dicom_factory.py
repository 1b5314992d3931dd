"""Write small, synthetic but valid DICOM Part 10 files for tests and benchmarks.

Every file is built with pydicom from scratch (no real patient data), so tests can create exactly
the patient / study / series layout they need in a ``tmp_path``::

    from tests.helpers.dicom_factory import new_uid, write_dicom, write_sr

    study = new_uid()
    series = new_uid()
    for i in range(3):
        write_dicom(tmp_path / f"img{i}.dcm", patient_name="Doe^Jane", patient_id="P1",
                    study_uid=study, series_uid=series, instance_number=i + 1)
    write_sr(tmp_path / "report.dcm", patient_name="Doe^Jane", patient_id="P1", study_uid=study)

Functions:

* :func:`new_uid` - a fresh, valid DICOM UID.
* :func:`make_dataset` - an in-memory image :class:`~pydicom.dataset.FileDataset` (CR/DX/...,
  any size, 8 or 16 bit, with or without pixel data).
* :func:`write_dicom` - :func:`make_dataset` written to disk (optionally without the 128-byte
  preamble, as some old PACS exports are).
* :func:`make_sr` / :func:`write_sr` - a Basic Text Structured Report: a valid DICOM object that
  has no pixel data (the viewer must list it but not show it as an image).
* :func:`synthetic_pixels` - the deterministic test pattern used for pixel data.

All functions take keyword arguments only (after the path) and return what they wrote, so a test
can assert on the exact UIDs and values. Files are Explicit VR Little Endian, uncompressed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    BasicTextSRStorage,
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)

# Storage SOP class used for each modality when the caller does not pass one.
SOP_CLASS_FOR_MODALITY = {
    "CR": ComputedRadiographyImageStorage,
    "DX": DigitalXRayImageStorageForPresentation,
}


def new_uid() -> str:
    """A new, globally unique, valid DICOM UID (pydicom's ``generate_uid``)."""
    return str(generate_uid())


def synthetic_pixels(rows: int, columns: int, bits_stored: int = 12, frames: int = 1) -> np.ndarray:
    """A deterministic diagonal ramp with a bright square, cheap to compute for large sizes.

    Returns ``uint8`` when ``bits_stored <= 8`` else ``uint16``, shape ``(rows, columns)`` or
    ``(frames, rows, columns)`` when ``frames > 1``. Values span ``0 .. 2**bits_stored - 1``.
    """
    top = (1 << bits_stored) - 1
    ramp = np.add.outer(np.arange(rows, dtype=np.float32), np.arange(columns, dtype=np.float32))
    ramp *= top / max(1.0, float(rows + columns - 2))
    img = ramp.astype(np.uint8 if bits_stored <= 8 else np.uint16)
    r0, c0 = rows // 3, columns // 3
    img[r0 : r0 + max(1, rows // 6), c0 : c0 + max(1, columns // 6)] = top
    if frames > 1:
        img = np.stack([np.roll(img, k, axis=1) for k in range(frames)])
    return img


def _file_meta(sop_class_uid: str, sop_instance_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def _patient_and_study(
    ds: Dataset,
    *,
    patient_name: str,
    patient_id: str,
    patient_sex: str,
    patient_birth_date: str,
    study_uid: str,
    study_date: str,
    study_time: str,
    study_description: str,
    accession_number: str,
) -> None:
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientSex = patient_sex
    ds.PatientBirthDate = patient_birth_date
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = study_date
    ds.StudyTime = study_time
    ds.StudyDescription = study_description
    ds.AccessionNumber = accession_number
    ds.StudyID = "1"
    ds.ReferringPhysicianName = ""


def make_dataset(
    *,
    patient_name: str = "Test^Patient",
    patient_id: str = "TEST001",
    patient_sex: str = "O",
    patient_birth_date: str = "19700101",
    study_uid: str | None = None,
    study_date: str = "20240101",
    study_time: str = "120000",
    study_description: str = "Chest",
    accession_number: str = "ACC001",
    series_uid: str | None = None,
    series_number: int | None = 1,
    series_description: str = "PA",
    sop_instance_uid: str | None = None,
    sop_class_uid: str | None = None,
    instance_number: int | None = 1,
    modality: str = "CR",
    view_position: str = "PA",
    rows: int = 64,
    columns: int = 64,
    bits_stored: int = 12,
    frames: int = 1,
    pixels: bool | np.ndarray = True,
    pixel_spacing: tuple[float, float] | None = (0.2, 0.2),
    window: tuple[float, float] | None = None,
    photometric: str = "MONOCHROME2",
) -> FileDataset:
    """Build an uncompressed grayscale image object in memory.

    UIDs left as ``None`` are generated (read them back from the returned dataset). ``pixels``:
    ``True`` fills Pixel Data with :func:`synthetic_pixels`, an array uses that array (its dtype
    must match ``bits_stored``: uint8 for <= 8 bits, uint16 otherwise), ``False`` writes a header
    without Pixel Data (as a truncated file would be). ``series_number`` / ``instance_number``
    ``None`` leave the element out. ``sop_class_uid`` defaults to CR/DX storage for those
    modalities, Secondary Capture otherwise.
    """
    sop_instance_uid = sop_instance_uid or new_uid()
    sop_class_uid = sop_class_uid or SOP_CLASS_FOR_MODALITY.get(modality, SecondaryCaptureImageStorage)
    ds = FileDataset("", Dataset(), file_meta=_file_meta(sop_class_uid, sop_instance_uid), preamble=b"\0" * 128)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid
    _patient_and_study(
        ds,
        patient_name=patient_name,
        patient_id=patient_id,
        patient_sex=patient_sex,
        patient_birth_date=patient_birth_date,
        study_uid=study_uid or new_uid(),
        study_date=study_date,
        study_time=study_time,
        study_description=study_description,
        accession_number=accession_number,
    )
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid or new_uid()
    if series_number is not None:
        ds.SeriesNumber = series_number
    ds.SeriesDescription = series_description
    if instance_number is not None:
        ds.InstanceNumber = instance_number
    ds.ViewPosition = view_position
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 8 if bits_stored <= 8 else 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    if pixel_spacing is not None:
        ds.PixelSpacing = [f"{pixel_spacing[0]:g}", f"{pixel_spacing[1]:g}"]
    if window is not None:
        ds.WindowCenter = f"{window[0]:g}"
        ds.WindowWidth = f"{window[1]:g}"
    if pixels is not False:
        arr = synthetic_pixels(rows, columns, bits_stored, frames) if pixels is True else np.asarray(pixels)
        expected = np.uint8 if bits_stored <= 8 else np.uint16
        if arr.dtype != expected:
            raise ValueError(f"pixel array dtype {arr.dtype} does not match bits_stored={bits_stored}")
        ds.PixelData = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
    return ds


def _save(ds: FileDataset, path: str | os.PathLike[str], preamble: bool) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if preamble:
        ds.save_as(path, enforce_file_format=True)
    else:
        # No 128-byte preamble and no "DICM" prefix: just the file meta group and the dataset.
        ds.preamble = None
        ds.save_as(path, enforce_file_format=False, implicit_vr=False, little_endian=True)
    return path


def write_dicom(path: str | os.PathLike[str], *, preamble: bool = True, **kwargs) -> FileDataset:
    """Write an image object (see :func:`make_dataset` for the keyword arguments) to ``path``.

    Parent folders are created. ``preamble=False`` writes a file without the 128-byte preamble
    and "DICM" marker. Returns the dataset that was written (with its generated UIDs).
    """
    ds = make_dataset(**kwargs)
    _save(ds, path, preamble)
    ds.filename = os.fspath(path)
    return ds


def make_sr(
    *,
    patient_name: str = "Test^Patient",
    patient_id: str = "TEST001",
    patient_sex: str = "O",
    patient_birth_date: str = "19700101",
    study_uid: str | None = None,
    study_date: str = "20240101",
    study_time: str = "120000",
    study_description: str = "Chest",
    accession_number: str = "ACC001",
    series_uid: str | None = None,
    series_number: int = 99,
    series_description: str = "Report",
    sop_instance_uid: str | None = None,
    instance_number: int = 1,
    text: str = "No acute findings. Synthetic test report.",
) -> FileDataset:
    """A Basic Text SR (modality SR) with one text item and no Pixel Data."""
    sop_instance_uid = sop_instance_uid or new_uid()
    ds = FileDataset(
        "", Dataset(), file_meta=_file_meta(BasicTextSRStorage, sop_instance_uid), preamble=b"\0" * 128
    )
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = BasicTextSRStorage
    ds.SOPInstanceUID = sop_instance_uid
    _patient_and_study(
        ds,
        patient_name=patient_name,
        patient_id=patient_id,
        patient_sex=patient_sex,
        patient_birth_date=patient_birth_date,
        study_uid=study_uid or new_uid(),
        study_date=study_date,
        study_time=study_time,
        study_description=study_description,
        accession_number=accession_number,
    )
    ds.Modality = "SR"
    ds.SeriesInstanceUID = series_uid or new_uid()
    ds.SeriesNumber = series_number
    ds.SeriesDescription = series_description
    ds.InstanceNumber = instance_number
    ds.ContentDate = study_date
    ds.ContentTime = study_time
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    title = Dataset()
    title.CodeValue = "18748-4"
    title.CodingSchemeDesignator = "LN"
    title.CodeMeaning = "Diagnostic Imaging Report"
    ds.ConceptNameCodeSequence = Sequence([title])
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "TEXT"
    concept = Dataset()
    concept.CodeValue = "121071"
    concept.CodingSchemeDesignator = "DCM"
    concept.CodeMeaning = "Finding"
    item.ConceptNameCodeSequence = Sequence([concept])
    item.TextValue = text
    ds.ContentSequence = Sequence([item])
    return ds


def write_sr(path: str | os.PathLike[str], *, preamble: bool = True, **kwargs) -> FileDataset:
    """Write a Basic Text SR (see :func:`make_sr` for the keyword arguments) to ``path``.

    Returns the dataset that was written.
    """
    ds = make_sr(**kwargs)
    _save(ds, path, preamble)
    ds.filename = os.fspath(path)
    return ds
