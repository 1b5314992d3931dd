"""Orientation markers (Qt-free): which patient direction each edge of the shown image faces.

DICOM Patient Orientation (0020,0020) gives two values: the patient direction of the image's rows
(towards increasing column, i.e. to the right of the stored image) and of its columns (downwards).
Letters: L/R (left/right), A/P (anterior/posterior), H/F (head/feet), compound like "FL". A PA
chest film shown the usual way is ``L\\F``: the patient's right on the viewer's left, feet down.

The right edge shows the direction screen +x points to after the display's rotation/flip
(:data:`app.viewer.state.Orientation`, Qt's layout: image +x goes to screen (m11, m12), image +y
to (m21, m22)); the left edge its opposite; likewise bottom and top.

Without Patient Orientation there are no markers: ViewPosition (PA/AP) and ImageLaterality say
how the film was taken, not how its pixels are stored, so a marker derived from them could put
R where the patient's left is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "H": "F", "F": "H"}


@dataclass(frozen=True)
class EdgeLabels:
    left: str
    right: str
    top: str
    bottom: str

    def as_dict(self) -> dict[str, str]:
        return {"left": self.left, "right": self.right, "top": self.top, "bottom": self.bottom}


def opposite(direction: str) -> str:
    return "".join(OPPOSITE.get(c, c) for c in direction)


def patient_orientation(values: Sequence[str] | None) -> tuple[str, str] | None:
    """The two directions, upper-cased, or None when absent or not made of L/R/A/P/H/F."""
    if not values or len(values) != 2:
        return None
    row, col = (str(v).strip().upper() for v in values)
    if not row or not col or any(c not in OPPOSITE for c in row + col):
        return None
    return row, col


def edge_labels(values: Sequence[str] | None, orientation: tuple[int, int, int, int]) -> EdgeLabels | None:
    """The label of each screen edge for Patient Orientation ``values`` shown with ``orientation``."""
    parsed = patient_orientation(values)
    if parsed is None:
        return None
    row, col = parsed
    m11, m12, m21, m22 = orientation
    # screen +x and +y as image directions: the image axis (row or column) mapped onto them, signed
    right = row if m11 == 1 else opposite(row) if m11 == -1 else col if m21 == 1 else opposite(col)
    bottom = row if m12 == 1 else opposite(row) if m12 == -1 else col if m22 == 1 else opposite(col)
    return EdgeLabels(left=opposite(right), right=right, top=opposite(bottom), bottom=bottom)
