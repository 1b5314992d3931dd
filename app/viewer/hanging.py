"""A chest-radiograph hanging protocol (Qt-free): current and prior side by side.

:func:`chest_hanging` places the current image top left and, from the files that are open or
indexed, the most recent prior frontal image of the same patient (an earlier study, by study date
and time) top right; the lateral views of those two studies go to a second row when there are any.
Same patient means the same non-empty Patient ID; files without one get no prior.

Frontal: ViewPosition PA or AP (or none given and not a lateral). Lateral: ViewPosition LL, RL,
LAT/LATERAL (and the decubitus/oblique terms are neither).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ml.imaging.image import ImageMeta
from ml.imaging.index import InstanceEntry

FRONTAL = ("PA", "AP")
LATERAL = ("LL", "RL", "LAT", "LATERAL")


def is_frontal(meta: ImageMeta) -> bool:
    view = meta.view_position.strip().upper()
    return view in FRONTAL or not view


def is_lateral(meta: ImageMeta) -> bool:
    return meta.view_position.strip().upper() in LATERAL


def date_text(value: str) -> str:
    v = value.strip()
    return f"{v[:4]}-{v[4:6]}-{v[6:8]}" if len(v) == 8 and v.isdigit() else v


@dataclass(frozen=True)
class Cell:
    row: int
    col: int
    entry: InstanceEntry
    caption: str  # e.g. "Current 2024-03-01", "Prior 2023-01-10"


@dataclass(frozen=True)
class Hanging:
    rows: int
    cols: int
    cells: tuple[Cell, ...]

    def cell(self, row: int, col: int) -> Cell | None:
        return next((c for c in self.cells if (c.row, c.col) == (row, col)), None)


def _when(meta: ImageMeta) -> tuple[str, str]:
    return meta.study_date.strip(), meta.study_time.strip()


def _study_key(meta: ImageMeta) -> str:
    return meta.study_uid or f"date:{meta.study_date}"


def _first(entries: list[InstanceEntry], want) -> InstanceEntry | None:
    return next((e for e in entries if e.is_image and want(e.meta)), None)


def chest_hanging(current: InstanceEntry, candidates: Iterable[InstanceEntry]) -> Hanging:
    """Where the current image, its prior and their laterals go (see the module docstring)."""
    meta = current.meta
    pid = meta.patient_id.strip()
    same_patient = [e for e in candidates if pid and e.is_image and e.meta.patient_id.strip() == pid]
    this_study = [e for e in same_patient if _study_key(e.meta) == _study_key(meta) and e.path != current.path]
    earlier: dict[str, list[InstanceEntry]] = {}
    for e in same_patient:
        if _study_key(e.meta) != _study_key(meta) and _when(e.meta) < _when(meta) and e.meta.study_date:
            earlier.setdefault(_study_key(e.meta), []).append(e)
    prior_study = max(
        (entries for entries in earlier.values() if _first(entries, is_frontal) is not None),
        key=lambda entries: _when(entries[0].meta),
        default=[],
    )
    prior = _first(prior_study, is_frontal)
    current_lateral = _first(this_study, is_lateral) if not is_lateral(meta) else None
    prior_lateral = _first(prior_study, is_lateral)

    cells = [Cell(0, 0, current, f"Current {date_text(meta.study_date)}".strip())]
    if prior is not None:
        cells.append(Cell(0, 1, prior, f"Prior {date_text(prior.meta.study_date)}"))
    if current_lateral is not None:
        cells.append(Cell(1, 0, current_lateral, f"Current lateral {date_text(meta.study_date)}".strip()))
    if prior_lateral is not None and prior is not None:
        cells.append(Cell(1, 1, prior_lateral, f"Prior lateral {date_text(prior.meta.study_date)}"))
    rows = 2 if any(c.row == 1 for c in cells) else 1
    cols = 2 if any(c.col == 1 for c in cells) else 1
    return Hanging(rows, cols, tuple(cells))
