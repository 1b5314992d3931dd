"""Which opened file to show first (Qt-free): a radiograph, not the photograph that sorts first.

Rank: DICOM radiographs (Modality CR, DX, DR) < other DICOM images < PNG/JPEG; within a rank the
order the files came in. Non-image objects (SR, ...) are never picked while an image exists, and
our results objects (measurement/AI SRs, Parametric Maps) never: they are shown over the image
they belong to (app.viewer.dicom_objects), so dropping one keeps that image on screen.
"""

from __future__ import annotations

from collections.abc import Iterable

from ml.imaging.image import ImageMeta
from ml.imaging.index import InstanceEntry

RADIOGRAPH_MODALITIES = ("CR", "DX", "DR")
# Parametric Map, Comprehensive 3D / Enhanced / Comprehensive SR (ml.dicom_out.readback.OVERLAY_CLASSES)
OVERLAY_CLASSES = ("1.2.840.10008.5.1.4.1.1.30", "1.2.840.10008.5.1.4.1.1.88.34", "1.2.840.10008.5.1.4.1.1.88.33",
                   "1.2.840.10008.5.1.4.1.1.88.22")


def is_radiograph(meta: ImageMeta) -> bool:
    return meta.kind == "dicom" and meta.modality.upper() in RADIOGRAPH_MODALITIES


def show_rank(entry: InstanceEntry) -> int:
    """0: a DICOM radiograph, 1: another DICOM image, 2: a PNG/JPEG, 3: no image."""
    if not entry.is_image:
        return 3
    if is_radiograph(entry.meta):
        return 0
    return 1 if entry.meta.kind == "dicom" else 2


def first_to_show(entries: Iterable[InstanceEntry]) -> InstanceEntry | None:
    """The best file to show first (see the module docstring); None when there is nothing."""
    best: InstanceEntry | None = None
    for entry in entries:
        if entry.meta.sop_class_uid in OVERLAY_CLASSES:
            continue
        if best is None or show_rank(entry) < show_rank(best):
            best = entry
    return best
