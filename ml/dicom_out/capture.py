"""The displayed image with its overlay burned in, as a DICOM Secondary Capture (highdicom SCImage):
the fallback for viewers that show neither SR nor Parametric Map. New series of the source study,
referencing the source instance (Source Image Sequence); "Not for diagnostic use" in the series
description and burned in as Burned In Annotation YES. No Qt.
"""

from __future__ import annotations

import highdicom as hd
import numpy as np
from pydicom import Dataset
from pydicom.sequence import Sequence

from ml import __version__
from ml.dicom_out.results import (
    MANUFACTURER,
    NOT_FOR_DIAGNOSIS,
    DicomOutError,
    _drop_invalid_copied,
    _quiet_names,
)

SC_SERIES_NUMBER = 9904


def secondary_capture(source: Dataset, rgb: np.ndarray, frame: int = 0,
                      series_uid: str | None = None, description: str = "overlay") -> hd.sc.SCImage:
    """``rgb`` (rows x cols x 3 uint8, e.g. the image with its heatmap blended in) as an SC image."""
    pixels = np.ascontiguousarray(rgb, dtype=np.uint8)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise DicomOutError("A secondary capture needs an RGB picture (rows x columns x 3).")
    orientation = source.get("PatientOrientation")
    spacing = source.get("PixelSpacing")
    same_grid = (pixels.shape[0], pixels.shape[1]) == (int(source.get("Rows", 0)), int(source.get("Columns", 0)))
    pixel_spacing = (float(spacing[0]), float(spacing[1])) if spacing and same_grid else None
    with _quiet_names():
        sc = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=source, pixel_array=pixels, photometric_interpretation="RGB", bits_allocated=8,
            coordinate_system="PATIENT", series_instance_uid=series_uid or hd.UID(),
            series_number=SC_SERIES_NUMBER, sop_instance_uid=hd.UID(), instance_number=1,
            manufacturer=MANUFACTURER,
            pixel_spacing=pixel_spacing,  # type: ignore[arg-type]  # highdicom annotates it as ints
            patient_orientation=("L", "F"),  # replaced below: highdicom insists on single letters
            transfer_syntax_uid="1.2.840.10008.1.2.1")
    # the source's own Patient Orientation (e.g. "P\\FL"), else empty (type 2: unknown)
    kept: list[str] | str = [str(v) for v in orientation] if orientation and len(orientation) == 2 else ""
    sc.PatientOrientation = kept  # type: ignore[assignment]
    sc.BodyPartExamined = str(source.get("BodyPartExamined", "") or "CHEST")  # Laterality's condition needs it
    if source.get("Laterality"):  # type 2C: present for a paired body part, absent otherwise
        sc.Laterality = source.Laterality
    sc.SeriesDescription = f"AI {description} - {NOT_FOR_DIAGNOSIS}"[:64]
    sc.ImageComments = f"{NOT_FOR_DIAGNOSIS}. Screen capture of CXR Studio {__version__}."
    sc.BurnedInAnnotation = "YES"
    sc.ConversionType = "WSD"  # workstation
    ref = Dataset()
    ref.ReferencedSOPClassUID = source.SOPClassUID
    ref.ReferencedSOPInstanceUID = source.SOPInstanceUID
    if int(source.get("NumberOfFrames", 1) or 1) > 1:
        ref.ReferencedFrameNumber = frame + 1
    sc.SourceImageSequence = Sequence([ref])
    sc.ImageType = ["DERIVED", "SECONDARY"]
    return _drop_invalid_copied(sc)
