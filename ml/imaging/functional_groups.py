"""Enhanced multi-frame images: values that live in the functional groups (PS3.3 C.7.6.16).

In Enhanced CT/MR/XA/DX (and the legacy converted enhanced) objects, rescale, window and pixel
spacing sit in the Shared Functional Groups Sequence (the same for every frame) or in the
Per-frame Functional Groups Sequence (one item per frame), not at the top level. A per-frame
macro overrides the shared one for its frame.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydicom.dataset import Dataset


def _first(seq: Any) -> Dataset | None:
    try:
        return seq[0] if seq else None
    except (TypeError, IndexError):
        return None


def has_functional_groups(ds: Dataset) -> bool:
    return "SharedFunctionalGroupsSequence" in ds or "PerFrameFunctionalGroupsSequence" in ds


def frame_item(ds: Dataset, frame: int, keyword: str) -> Dataset | None:
    """The first item of functional group macro ``keyword`` (e.g. "PixelMeasuresSequence") that
    applies to ``frame`` (0-based): the frame's own, else the shared one; None when neither has it."""
    try:
        per_frame = ds.get("PerFrameFunctionalGroupsSequence", None)
        if per_frame is not None and 0 <= frame < len(per_frame):
            item = _first(per_frame[frame].get(keyword, None))
            if item is not None:
                return item
        shared = _first(ds.get("SharedFunctionalGroupsSequence", None))
        return _first(shared.get(keyword, None)) if shared is not None else None
    except Exception:  # noqa: BLE001 - a damaged functional group: behave as if absent
        return None


def frame_rescale(ds: Dataset, frame: int) -> tuple[float, float] | None:
    """(slope, intercept) of the frame's Pixel Value Transformation macro, None when absent or bad."""
    item = frame_item(ds, frame, "PixelValueTransformationSequence")
    if item is None or "RescaleSlope" not in item:
        return None
    try:
        slope = float(item.RescaleSlope)
        intercept = float(item.get("RescaleIntercept", 0.0) or 0.0)
    except (TypeError, ValueError, OverflowError, AttributeError):
        return None
    if slope == 0 or slope != slope or abs(slope) == float("inf") or abs(intercept) == float("inf"):
        return None
    return slope, intercept


def frame_count(ds: Dataset) -> int:
    try:
        return max(int(ds.get("NumberOfFrames", 1) or 1), 1)
    except (TypeError, ValueError):
        return 1
