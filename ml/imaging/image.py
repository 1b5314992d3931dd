"""The one image type every reader produces and every consumer (viewer, CLI, models) uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PixelSpacing:
    """Physical size of one pixel in millimetres, and where that number came from.

    ``source`` is one of: "PixelSpacing" (calibrated at the patient), "ImagerPixelSpacing"
    (at the detector: objects at the patient look magnified), "ImagerPixelSpacing /
    EstimatedRadiographicMagnificationFactor" (corrected to the patient plane),
    "NominalScannedPixelSpacing" (digitised film).
    """

    row_mm: float  # spacing between rows (vertical), mm
    col_mm: float  # spacing between columns (horizontal), mm
    source: str

    @property
    def calibrated_at_patient(self) -> bool:
        return self.source != "ImagerPixelSpacing"


@dataclass(frozen=True)
class Window:
    """A VOI window in modality units (DICOM C.11.2.1.2)."""

    center: float
    width: float
    function: str = "LINEAR"  # LINEAR, LINEAR_EXACT or SIGMOID
    explanation: str = ""

    @property
    def low(self) -> float:
        return self.center - self.width / 2.0

    @property
    def high(self) -> float:
        return self.center + self.width / 2.0


@dataclass(frozen=True)
class VoiLut:
    """A VOI LUT from the VOI LUT Sequence (C.11.2.1.1)."""

    first_mapped: int
    bits: int  # bits per LUT entry
    data: np.ndarray = field(repr=False)
    explanation: str = ""


@dataclass
class ImageMeta:
    """Header facts, read without decoding pixels. Strings are "" when absent."""

    path: str = ""
    kind: str = "dicom"  # dicom | png | jpeg
    patient_name: str = ""
    patient_id: str = ""
    patient_sex: str = ""
    patient_birth_date: str = ""
    study_uid: str = ""
    study_date: str = ""
    study_time: str = ""
    study_description: str = ""
    accession_number: str = ""
    series_uid: str = ""
    series_number: int | None = None
    series_description: str = ""
    sop_class_uid: str = ""
    sop_class_name: str = ""
    sop_instance_uid: str = ""
    instance_number: int | None = None
    modality: str = ""
    view_position: str = ""
    laterality: str = ""
    patient_orientation: tuple[str, ...] = ()  # (0020,0020): row and column directions, e.g. ("L", "F")
    photometric: str = "MONOCHROME2"
    samples_per_pixel: int = 1
    bits_allocated: int = 8
    bits_stored: int = 8
    pixel_representation: int = 0  # 0 unsigned, 1 signed
    rows: int = 0
    columns: int = 0
    n_frames: int = 1
    transfer_syntax_uid: str = ""
    transfer_syntax_name: str = ""
    lossy: bool = False
    lossy_reason: str = ""
    pixel_spacing: PixelSpacing | None = None
    presentation_lut_shape: str = ""  # IDENTITY or INVERSE when present
    has_pixels: bool = True
    float_pixels: bool = False

    @property
    def is_color(self) -> bool:
        return self.samples_per_pixel == 3 or self.photometric.startswith(("RGB", "YBR", "PALETTE"))

    @property
    def inverted(self) -> bool:
        """True when the displayed grey levels must be inverted (MONOCHROME1 / INVERSE shape)."""
        if self.is_color:
            return False
        inverse = self.photometric == "MONOCHROME1"
        if self.presentation_lut_shape == "INVERSE":
            inverse = not inverse
        elif self.presentation_lut_shape == "IDENTITY":
            # Presentation LUT Shape IDENTITY on MONOCHROME1 still means "output is P-values";
            # MONOCHROME1 inversion applies before it (C.11.6.1). Keep the photometric meaning.
            pass
        return inverse

    def to_dict(self, include_identity: bool = True) -> dict[str, Any]:
        """A JSON-safe dict. ``include_identity=False`` drops patient name/ID/birth date."""
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            if not include_identity and key in ("patient_name", "patient_id", "patient_birth_date"):
                continue
            if isinstance(value, PixelSpacing):
                value = {"row_mm": value.row_mm, "col_mm": value.col_mm, "source": value.source}
            out[key] = value
        out["is_color"] = self.is_color
        out["inverted"] = self.inverted
        return out


@dataclass
class XRayImage:
    """A decoded image: stored pixel values per frame plus what is needed to display them.

    ``frames`` has shape (n_frames, rows, cols) for grayscale or (n_frames, rows, cols, 3) for
    colour (already converted to RGB). Values are the *stored* values: the modality LUT is applied
    by :mod:`ml.imaging.display`, never here, so the file's numbers stay inspectable.
    """

    meta: ImageMeta
    frames: np.ndarray = field(repr=False)
    windows: list[Window] = field(default_factory=list)  # presets from the file, first = default
    voi_luts: list[VoiLut] = field(default_factory=list)
    # Modality LUT: either rescale (slope, intercept) or a LUT sequence item (pydicom Dataset)
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    modality_lut: Any = field(default=None, repr=False)  # pydicom Dataset of the ModalityLUTSequence item
    dataset: Any = field(default=None, repr=False)  # the pydicom Dataset (no pixel data) for the tag panel
    # Enhanced multi-frame: per-frame (slope, intercept) and windows from the functional groups;
    # empty when the top-level values above hold for every frame.
    frame_rescales: list[tuple[float, float]] = field(default_factory=list, repr=False)
    frame_windows: list[list[Window]] = field(default_factory=list, repr=False)

    def rescale(self, frame: int = 0) -> tuple[float, float]:
        """(slope, intercept) of the Modality LUT for ``frame``."""
        if 0 <= frame < len(self.frame_rescales):
            return self.frame_rescales[frame]
        return self.rescale_slope, self.rescale_intercept

    def windows_for(self, frame: int = 0) -> list[Window]:
        """The file's windows for ``frame``, first = default."""
        if 0 <= frame < len(self.frame_windows) and self.frame_windows[frame]:
            return self.frame_windows[frame]
        return self.windows

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    @property
    def is_color(self) -> bool:
        return self.frames.ndim == 4

    @property
    def path(self) -> Path:
        return Path(self.meta.path)
